"""Every configured loss term trains, whatever the combination (issue 19).

Over the registries (every user encoder x encoder x fusion x main loss, semantic coupling on and
off) one training step on a tiny dataset with two modalities and context/time modes must

(a) report every configured loss part: the main loss, ``l2``, ``coupling`` when on, and each
    plug-in's own terms (FREEDOM's ``modality_bpr``, gated fusion's alignment), and
(b) give a non-zero gradient to every trainable parameter.

Combinations that make no sense are refused by the configuration with a one-line error (the test
asserts the refusal instead of skipping). The DDP version for one combination is at the end.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from mrs.errors import MrsError
from mrs.losses import LOSSES
from mrs.models.base import ENCODERS, FUSIONS, USERS
from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, seed_everything
from tests.train.conftest import tiny_overrides

#: the terms each built-in plug-in adds when configured as below (a new plug-in with its own
#: terms adds its row here; without a row, only (b) and the generic terms are checked for it)
PLUGIN_TERMS = {"freedom": {"modality_bpr"}, "gated": {"align_item", "align_feature"},
                "faerec": {"align_item", "align_feature"},
                "vbpr": {"emb_reg"}, "lattice": {"emb_reg"}, "bm3": {"bm3_cf", "emb_reg", "bm3_mm"},
                "mmgcn": {"emb_reg"}, "grcn": {"emb_reg"},
                "mgcn": {"emb_reg", "mgcn_cl"}, "lgmrec": {"emb_reg", "lgmrec_hcl"}}
#: encoders trained with content here (those that need it, and those that read it if given)
CONTENT = {"freedom", "bm3", *(e for e in ENCODERS.names() if ENCODERS.get(e).needs_features)}
OPTIONS = {"gated": {"model__align_item": 0.1, "model__align_feature": 0.1}}

COMBOS = list(itertools.product(USERS.names(), ENCODERS.names(), FUSIONS.names(), LOSSES.names(),
                                (False, True)))


def _refusal(user_encoder: str, encoder: str, fusion: str, loss: str) -> str | None:
    """The one-line error a meaningless combination must get, or None."""
    ue = USERS.get(user_encoder)
    if loss == "none" and ENCODERS.get(encoder).default_loss != "none":
        return "model.loss"  # no main loss and no objective of the encoder's own: nothing trains
    if encoder == "vbpr" and fusion == "late":
        return "model.fusion"  # VBPR's content block would overwrite late fusion's last branch
    if encoder == "grcn" and fusion == "late" or encoder == "mmgcn" and fusion != "none":
        return "model.fusion"  # GRCN reads the ego rows' first columns; MMGCN's are frozen (MMRec)
    if ue.sequential and fusion == "late":
        return "model.fusion"  # late fusion scales the static user row per block
    if FUSIONS.get(fusion).embeds_sequences and not getattr(ue, "causal", False):
        return "model.user_encoder"  # FAERec gates the causal (SASRec) input sequence
    return None


@pytest.fixture(scope="module")
def dataset(tiny_data):
    from mrs.data.prepared import load_prepared

    return load_prepared(tiny_data)


def _cfg(tiny_data, user_encoder, encoder, fusion, loss, coupling):
    content = fusion != "none" or coupling
    return load_train_config(None, tiny_overrides(
        tiny_data, model__user_encoder=user_encoder, model__encoder=encoder, model__fusion=fusion,
        model__loss=loss, model__loss_negatives=5, model__coupling_mu0=0.5 if coupling else 0.0,
        model__seq_len=6, model__modes=True, model__reg=1e-3, train__batch_size=64,
        data__features="[text-synth, image-synth]" if content or encoder in CONTENT else "[]",
        **OPTIONS.get(fusion, {})))


def one_step(tr: Trainer) -> dict[str, float]:
    """One training step on the trainer's first batch; gradients stay on the parameters."""
    tr.model.train()
    tr.model.on_epoch_start(0, tr.generator)
    n = len(tr.seq.train) if tr.seq is not None else len(tr.triples)
    idx = torch.randperm(n, generator=tr.generator)[:tr.cfg.train.batch_size]
    parts, _ = tr.train_step(idx)
    return parts


def check_terms_and_gradients(tr: Trainer, parts: dict[str, float], loss: str, encoder: str,
                              fusion: str, coupling: bool) -> None:
    expected = {"loss", loss, "l2", *PLUGIN_TERMS.get(encoder, ()), *PLUGIN_TERMS.get(fusion, ())}
    if coupling:
        expected.add("coupling")
    assert expected <= set(parts), f"configured terms missing from the loss: {expected - set(parts)}"
    assert all(torch.isfinite(torch.tensor(v)) for v in parts.values()), parts
    dead = [name for name, p in tr.model.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))]
    assert not dead, f"trainable parameters without a gradient: {dead}"


@pytest.mark.parametrize("user_encoder,encoder,fusion,loss,coupling", COMBOS,
                         ids=["-".join(map(str, c)) for c in COMBOS])
def test_every_configured_term_trains(tiny_data, dataset, user_encoder, encoder, fusion, loss, coupling):
    refusal = _refusal(user_encoder, encoder, fusion, loss)
    if refusal:
        with pytest.raises(MrsError, match=refusal):
            Trainer.build(_cfg(tiny_data, user_encoder, encoder, fusion, loss, coupling), seed_everything(0),
                          torch.device("cpu"), ds=dataset)
        return
    cfg = _cfg(tiny_data, user_encoder, encoder, fusion, loss, coupling)
    tr = Trainer.build(cfg, seed_everything(0), torch.device("cpu"), ds=dataset)
    parts = one_step(tr)
    check_terms_and_gradients(tr, parts, loss, encoder, fusion, coupling)


def test_auto_loss_is_the_user_encoders_usual_one(tiny_data, dataset):
    for ue, want in (("id", "bpr"), ("sasrec", "ce"), ("bert4rec", "ce")):
        cfg = load_train_config(None, tiny_overrides(tiny_data, model__user_encoder=ue, model__seq_len=6))
        assert Trainer.build(cfg, seed_everything(0), torch.device("cpu"), ds=dataset).model.loss == want


def test_coupling_moves_its_weight_under_every_user_encoder(tiny_data, dataset):
    """The defect that started issue 19: with sasrec, one step of coupling_mu0 > 0 left the
    coupling map W exactly unchanged (the sequential path never added the term)."""
    for ue in USERS.names():
        cfg = _cfg(tiny_data, ue, "mf", "early", "auto", True)
        tr = Trainer.build(cfg, seed_everything(0), torch.device("cpu"), ds=dataset)
        before = tr.model.coupling.weight.detach().clone()
        one_step(tr)
        assert not torch.equal(before, tr.model.coupling.weight), ue


def test_torchrun_refuses_alignment_terms_that_need_the_whole_batch(tiny_data, tmp_path, monkeypatch):
    """Gated fusion's in-batch InfoNCE and correlation terms differ per shard (the summed
    gradient was 20% off one process's): refused under torchrun with a one-line error."""
    from mrs.train import trainer
    from mrs.train.distributed import Dist

    monkeypatch.setattr(trainer, "init_distributed", lambda device: Dist(rank=0, world_size=2))
    cfg = _cfg(tiny_data, "id", "lightgcn", "gated", "bpr", False)
    with pytest.raises(MrsError, match="model.align_item"):
        trainer.run_train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bce_is_sasrecs_binary_cross_entropy_by_hand():
    """``bce`` = -mean[log σ(pos) + Σ_k log(1 - σ(neg_k))]: hand values, one and two negatives, and a
    masked (-inf) accidental hit adding nothing."""
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    pos, neg = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])
    want = -((math.log(sig(2.0)) + math.log(1 - sig(0.5))) + (math.log(sig(-1.0)) + math.log(1 - sig(3.0)))) / 2
    got = LOSSES.get("bce")(pos, neg, None, torch.zeros(2, dtype=torch.long))
    assert got.item() == pytest.approx(want, rel=1e-6)
    two = torch.tensor([[0.5, -float("inf")], [3.0, 1.0]])
    want2 = want + (-math.log(1 - sig(1.0))) / 2
    assert LOSSES.get("bce")(pos, two, None, None).item() == pytest.approx(want2, rel=1e-6)
    assert LOSSES.get("bce").negatives(100) == 1  # one negative per prediction, as SASRec / FAERec
