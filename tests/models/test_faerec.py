"""FAERec (model.fusion=faerec): each formula against a direct transcription on a tiny batch, the
scoring modes, one end-to-end `mrs train`, and the one-line errors of bad configurations."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from mrs.errors import MrsError
from mrs.models import ModelConfig, build_model
from mrs.models.faerec import (FAERecFusion, FAERecOptions, barlow_twins, curriculum, item_info_nce,
                               popularity_barlow_twins)
from mrs.models.objective import Predictions

from tests.train.conftest import tiny_data  # noqa: F401  (the trainer tests' tiny dataset)

from .planted import planted

R = 4


def _fusion(**kw) -> FAERecFusion:
    """Two modalities (3 + 2 = D = 5, so φ: 5 -> 2 -> 4), 6 items; dropout off unless given."""
    o = FAERecOptions(**{"mapper_dropout": 0.0, "gate_dropout": 0.0, **kw})
    return FAERecFusion({"text": 3, "image": 2}, R, torch.tensor([5, 0, 1, 9, 2, 3]), o)


def _feats(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"text": torch.randn(n, 3, generator=g), "image": torch.randn(n, 2, generator=g)}


def _phi(f: FAERecFusion, x: torch.Tensor) -> torch.Tensor:
    """φ(x) = W_2 GELU(W_1 x + b_1) + b_2, written out."""
    l1, l2 = f.mapper[0], f.mapper[3]
    return F.gelu(x @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias


def _gated(f: FAERecFusion, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LayerNorm(g a + (1 − g) b), g = σ(W_b GELU(W_a [a; b] + c_a) + c_b), written out."""
    wa, wb = f.gate[0], f.gate[3]
    g = torch.sigmoid(F.gelu(torch.cat([a, b], -1) @ wa.weight.T + wa.bias) @ wb.weight.T + wb.bias)
    m = g * a + (1 - g) * b
    return (m - m.mean(-1, keepdim=True)) / torch.sqrt(m.var(-1, unbiased=False, keepdim=True) + 1e-12)


def test_item_info_nce_is_id_to_semantic_with_other_occurrences_masked():
    g = torch.Generator().manual_seed(0)
    e, s = torch.randn(5, R, generator=g), torch.randn(5, R, generator=g)
    items = torch.tensor([7, 3, 7, 1, 3])  # item 7 at rows 0 and 2, item 3 at rows 1 and 4
    eh, sh = F.normalize(e, dim=1), F.normalize(s, dim=1)
    want = 0.0
    for n in range(5):  # denominator: the row's own semantic row and every other item's
        keep = [m for m in range(5) if m == n or items[m] != items[n]]
        logits = torch.stack([eh[n] @ sh[m] / 0.05 for m in keep])
        want -= (eh[n] @ sh[n] / 0.05 - torch.logsumexp(logits, 0)) / 5
    got = item_info_nce(e, s, items, 0.05)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(item_info_nce(s, e, items, 0.05), got)  # one direction only
    unmasked = F.cross_entropy(eh @ sh.T / 0.05, torch.arange(5))
    assert not torch.allclose(unmasked, got)  # the duplicates' masking matters here


def test_barlow_twins_by_hand_and_split_at_the_median_popularity():
    g = torch.Generator().manual_seed(0)
    e, s = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)

    def bt(x, y, gamma):
        zx = (x - x.mean(0)) / (x.std(0, unbiased=True) + 1e-5)
        zy = (y - y.mean(0)) / (y.std(0, unbiased=True) + 1e-5)
        out = 0.0
        for i in range(3):
            for j in range(3):
                c = sum(zx[n, i] * zy[n, j] for n in range(len(x))) / len(x)
                out += (1 - c) ** 2 if i == j else gamma * c ** 2
        return out

    assert torch.allclose(barlow_twins(e, s, 0.005), bt(e, s, 0.005), atol=1e-5)
    pop = torch.tensor([1.0, 4, 2, 9, 2, 1, 4])  # lower median 2: high = pop >= 2 (5 rows), low = 2 rows
    high = pop >= 2
    want = bt(e[high], s[high], 0.005) + bt(e[~high], s[~high], 0.005)
    assert torch.allclose(popularity_barlow_twins(e, s, pop, 0.005), want, atol=1e-5)
    lone = torch.tensor([1.0, 4, 4, 4, 4, 4, 4])  # one row below the median: that group adds nothing
    assert torch.allclose(popularity_barlow_twins(e, s, lone, 0.005), bt(e[1:], s[1:], 0.005), atol=1e-5)


@pytest.mark.parametrize("w_min,period", [(0.9, 30), (0.7, 20), (0.3, 25)])  # Beauty, Food, Yelp
def test_cosine_curriculum_values(w_min, period):
    f = _fusion(w_min=w_min, period=period)
    for epoch in (0, period, 2 * period):  # the peak, every P epochs
        f.on_epoch_start(epoch)
        assert f.weights_now() == pytest.approx((1.0, 0.0))
    f.on_epoch_start(period / 2)  # the trough at P/2 (an epoch only where P is even)
    assert f.weights_now() == pytest.approx((w_min, 1 - w_min))
    for epoch in (1, 7, period - 1):
        w = (1 - w_min) * (1 + math.cos(2 * math.pi * epoch / period)) / 2 + w_min
        assert curriculum(epoch, w_min, 1.0, period) == pytest.approx((w, 1 - w))
        assert w_min < w < 1.0


def test_mapper_and_gate_shapes_and_the_gated_sequence_inputs():
    f = _fusion()
    assert [tuple(f.mapper[i].weight.shape) for i in (0, 3)] == [(2, 5), (R, 2)]  # D -> D/2 -> r
    assert [tuple(f.gate[i].weight.shape) for i in (0, 3)] == [(2 * R, 2 * R), (R, 2 * R)]
    assert torch.equal(f.gate[3].bias, torch.zeros(R))  # c_b starts at zero, as published
    feats, ids = _feats(), torch.randn(6, R)
    x = torch.cat([feats["text"], feats["image"]], 1)
    assert torch.allclose(f.mapper(x), _phi(f, x), atol=1e-6)
    seq = torch.tensor([[6, 2, 0], [1, 1, 5]])  # 6 = padding
    pos = torch.randn(3, R)
    h = f.sequence_inputs(seq, pos, torch.nn.Identity(), item_ids=ids, feats=feats)
    assert h.shape == (2, 3, R)
    e = torch.cat([ids, torch.zeros(1, R)])[seq]                       # padding: a zero ID row
    s = _phi(f, torch.cat([x, torch.zeros(1, 5)])[seq])                # and φ of a zero feature row
    assert torch.allclose(h, _gated(f, e + pos, s + pos), atol=1e-5)
    drop = torch.nn.Dropout(0.5).train()  # the user encoder's dropout acts on both branches
    assert not torch.allclose(f.sequence_inputs(seq, pos, drop, item_ids=ids, feats=feats), h)


def test_published_scoring_is_ids_at_train_and_layernorm_of_the_sum_at_evaluation():
    f, feats, ids = _fusion(), _feats(), torch.randn(6, R)
    x = torch.cat([feats["text"], feats["image"]], 1)
    f.train()
    assert torch.equal(f(ids, feats), ids)
    f.eval()
    want = F.layer_norm(ids + _phi(f, x), (R,), f.norm.weight, f.norm.bias, eps=1e-12)
    assert torch.allclose(f(ids, feats), want, atol=1e-5)


def test_consistent_scoring_is_the_gate_at_train_and_at_evaluation():
    f, feats, ids = _fusion(scoring="consistent"), _feats(), torch.randn(6, R)
    x = torch.cat([feats["text"], feats["image"]], 1)
    want = _gated(f, ids, _phi(f, x))
    assert torch.allclose(f.train()(ids, feats), want, atol=1e-5)
    assert torch.allclose(f.eval()(ids, feats), want, atol=1e-5)


def test_alignment_reads_each_positions_input_and_first_negative_and_train_popularity():
    f = _fusion(align_weight=0.5, w_min=0.5, period=4)
    f.on_epoch_start(1)  # w_item = (1 − 0.5) · (1 + cos(2π/4)) / 2 + 0.5 = 0.75, w_feat = 0.25
    feats, ids = _feats(), torch.randn(6, R, requires_grad=True)
    p = Predictions(users=torch.zeros(4, dtype=torch.long), queries=torch.zeros(4, R),
                    pos=torch.tensor([2, 3, 4, 1]), modes=torch.zeros(4, 0, dtype=torch.long),
                    neg=torch.tensor([[5, 1], [0, 2], [3, 3], [4, 4]]), inputs=torch.tensor([0, 2, 3, 6]))
    items = f.alignment_items(torch.tensor([9]), p)  # the last prediction reads no input (padding 6)
    assert items.tolist() == [0, 2, 3, 5, 0, 3]
    parts = f.aux_losses(torch.tensor([9]), ids, feats, p)
    e, s = ids[items], f.mapper(torch.cat([feats["text"], feats["image"]], 1)[items])
    pop = torch.tensor([5.0, 1, 1, 9, 2, 3])[items]  # train counts, never-bought item 1 counts 1
    assert torch.allclose(parts["align_item"], 0.5 * 0.75 * item_info_nce(e, s, items, 0.05))
    assert torch.allclose(parts["align_feature"], 0.5 * 0.25 * popularity_barlow_twins(e, s, pop, 0.005))
    sum(parts.values()).backward()
    assert ids.grad[items].abs().sum() > 0 and ids.grad[[1, 4]].abs().sum() == 0


def _build(tiny=None, features=True, **options):
    d = planted(n_users=12, n_items=10, per_user=3, held_out=1)
    cfg = ModelConfig(user_encoder=options.pop("user_encoder", "sasrec"), fusion="faerec", dim=R,
                      seq_len=4, options={"faerec": options} if options else {})
    return build_model(cfg, n_users=12, n_items=10, mode_cardinalities=[], train_users=d.train_users,
                       train_items=d.train_items, features=d.features if features else None)


def test_pca_initialisation_is_the_unscaled_principal_scores():
    from mrs.models.gated import principal_scores

    d = planted(n_users=12, n_items=10, per_user=3, held_out=1)
    m = _build()
    x = torch.cat([F.normalize(v.float(), dim=1) for v in d.features.values()], 1)
    k = min(R, *x.shape)
    assert torch.allclose(m.item_emb.weight[:, :k], principal_scores(x, k), atol=1e-5)


@pytest.mark.parametrize("options,key", [
    ({"period": 0}, "model.options.faerec.period"),
    ({"w_min": 0.9, "w_max": 0.5}, "model.options.faerec.w_min"),
    ({"tau": 0.0}, "model.options.faerec.tau"),
    ({"tau": -1.0}, "model.options.faerec.tau"),
    ({"user_encoder": "id"}, "model.user_encoder"),
    ({"user_encoder": "bert4rec"}, "model.user_encoder"),
    ({"features": False}, "model.fusion='faerec' needs item features"),
    ({"nope": 1}, "model.options.faerec.nope"),
])
def test_bad_configurations_are_one_line_errors_naming_the_key(options, key):
    with pytest.raises(MrsError, match=key.replace(".", r"\.").replace("(", r"\(")) as err:
        _build(**options)
    assert "\n" not in str(err.value)


def test_mrs_train_sasrec_faerec_end_to_end(tiny_data, tmp_path):
    """`mrs train` with FAERec on the trainer tests' tiny dataset: both alignment terms logged
    each epoch with the curriculum's weights, finite metrics, and export refused in one line."""
    from mrs.cli import main

    sets = [f"data.dir={tiny_data}", "model.user_encoder=sasrec", "model.fusion=faerec", "model.dim=8",
            "model.seq_len=6", "data.features=[text-synth, image-synth]", "train.epochs=2",
            "train.device=cpu", "train.num_threads=1", "eval.bootstrap=0", "eval.ks=[5, 20]",
            "model.options.faerec.period=2", "model.options.faerec.w_min=0.5", "train.final_fit=train",
            "eval.both_queries=false"]
    run = tmp_path / "run"
    assert main(["train", *[a for s in sets for a in ("--set", s)], "--no-wandb", "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    first, second = m["history"]
    assert first["align_feature"] == 0.0 and first["align_item"] > 0  # epoch 0: w_item = 1, w_feat = 0
    assert second["align_feature"] > 0                                 # epoch 1: the trough, w_feat = .5
    assert all(math.isfinite(v) for v in m["test"]["all"].values() if v is not None)
    with pytest.raises(MrsError, match="model.fusion='faerec'"):
        from mrs.serve.export import export_run
        export_run(run, tmp_path / "model")
