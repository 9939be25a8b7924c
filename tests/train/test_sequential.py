"""Sequential user encoders (sasrec, bert4rec): sequences in time order, histories before the
query, the three losses, and a planted next-item structure SASRec must recover."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mrs.data.prepared import load_prepared, write_prepared
from mrs.errors import MrsError
from mrs.train.config import load_train_config
from mrs.train.sequences import histories, time_order, train_sequences
from mrs.train.trainer import run_train
from tests.train.conftest import tiny_overrides
from tests.train.seqdata import make_sequential


def _hand_dataset(tmp_path, with_ts=True):
    # user 0: items 3, 1 (tie at ts=10, file order 3 then 1), 2 (valid), 4 (test); user 1: 0 (test)
    df = pd.DataFrame({"user": [0, 0, 0, 0, 1], "item": [3, 1, 2, 4, 0], "ts": [10, 10, 20, 30, 5],
                       "split": [0, 0, 1, 2, 2]})
    if not with_ts:
        df = df.drop(columns="ts")
    items = pd.DataFrame({"item": range(5), "item_id": [str(i) for i in range(5)], "text": "",
                          "image": pd.Series([None] * 5, dtype=object)})
    users = pd.DataFrame({"user": [0, 1], "user_id": ["a", "b"]})
    return load_prepared(write_prepared(tmp_path / "hand", df, items, users, name="hand",
                                        source="test", modes={}, params={}, input_checksum="x"))


def test_histories_and_train_sequences_by_hand(tmp_path):
    ds = _hand_dataset(tmp_path)
    order = time_order(ds, "file")
    hist, n_empty = histories(ds, "valid", 3, order)
    # pad = n_items = 5; user 1 has no valid row, so no valid query: not counted (issue 19)
    assert hist.tolist() == [[5, 3, 1], [5, 5, 5]] and n_empty == 0
    hist, n_empty = histories(ds, "test", 3, order)
    assert hist.tolist() == [[3, 1, 2], [5, 5, 5]] and n_empty == 1
    hist, _ = histories(ds, "test", 2, order)
    assert hist.tolist() == [[1, 2], [5, 5]]  # the last L items
    s = train_sequences(ds, 3, order)
    assert s.users.tolist() == [0]  # user 1 has no train item
    assert s.inputs.tolist() == [[5, 5, 3]] and s.targets.tolist() == [[-1, -1, 1]]
    assert s.first.tolist() == [3]  # the no-history state's target: the first train item


def test_tie_rule_shuffle_reorders_only_ties(tmp_path):
    ds = _hand_dataset(tmp_path)
    seen = set()
    for seed in range(20):
        o = time_order(ds, "shuffle", seed)
        items = ds.interactions["item"].to_numpy()[o].tolist()
        assert items[2:] == [2, 4, 0] or items[-1] == 0  # ts order kept across distinct ts
        seen.add(tuple(items[:2]))
    assert seen == {(3, 1), (1, 3)}
    with pytest.raises(MrsError, match="model.seq_ties"):
        time_order(ds, "random")


def test_missing_order_is_an_error_naming_the_column(tmp_path):
    ds = _hand_dataset(tmp_path, with_ts=False)
    with pytest.raises(MrsError, match="missing column 'ts'"):
        time_order(ds)
    ds.meta["source"] = "amazon2014"  # txt lines are in time order: file order is the order
    assert time_order(ds).tolist() == [0, 1, 2, 3, 4]  # by user, then file order


@pytest.mark.parametrize("key,value,match", [
    ("model__seq_len", 0, "model.seq_len"), ("model__loss", "hinge", "model.loss"), ("model__loss_negatives", 0, "model.loss_negatives"),
    ("model__seq_heads", 3, "model.seq_heads")])
def test_bad_sequential_options_name_the_key(tiny_data, tmp_path, key, value, match):
    with pytest.raises(MrsError, match=match):
        cfg = load_train_config(None, tiny_overrides(tiny_data, model__user_encoder="sasrec",
                                                     wandb__enabled=False, **{key: value}))
        run_train(cfg, tmp_path / "run")


@pytest.mark.parametrize("user_encoder,loss,encoder,fusion", [
    ("sasrec", "ce", "mf", "none"), ("sasrec", "sampled_softmax", "lightgcn", "concat"),
    ("sasrec", "bpr", "freedom", "gated"), ("bert4rec", "ce", "mf", "early")])
def test_sequential_models_train_with_modes(tiny_data, tmp_path, user_encoder, loss, encoder, fusion):
    feats = "[text-synth, image-synth]" if fusion != "none" else "[]"
    align = ({"model__align_item": 0.1, "model__align_feature": 0.1} if fusion == "gated" else {})
    cfg = load_train_config(None, tiny_overrides(
        tiny_data, model__encoder=encoder, model__user_encoder=user_encoder, model__loss=loss,
        model__fusion=fusion, model__seq_len=8, model__loss_negatives=10, data__features=feats,
        eval__bootstrap=0, wandb__enabled=False, **align))
    m = run_train(cfg, tmp_path / "run")
    assert all(math.isfinite(h["loss"]) for h in m["history"])
    assert loss in m["history"][0]
    if fusion == "gated":  # alignment terms trained, mean gate of tail and head items logged
        assert {"align_item", "align_feature", "alpha/gate_tail", "alpha/gate_head"} <= set(m["history"][0])


def test_gated_fusion_with_the_bpr_path_logs_gates(tiny_data, tmp_path):
    cfg = load_train_config(None, tiny_overrides(
        tiny_data, model__encoder="lightgcn", model__fusion="gated", model__align_item=0.1,
        data__features="[text-synth, image-synth]", eval__bootstrap=0, wandb__enabled=False))
    m = run_train(cfg, tmp_path / "run")
    h = m["history"][0]
    assert "align_item" in h and 0.0 < h["alpha/gate_tail"] < 1.0 and 0.0 < h["alpha/gate_head"] < 1.0
    assert 0.0 <= m["test"]["all"]["recall@20"] <= 1.0


def test_one_interaction_users_are_handled(tmp_path):
    d = make_sequential(tmp_path / "ds", n_users=60, n_items=30, one_item_users=6)
    cfg = load_train_config(None, [f"data.dir={d}", "model.encoder=mf", "model.user_encoder=sasrec",
                                   "model.dim=8", "model.seq_len=5", "train.epochs=1", "train.device=cpu",
                                   "eval.bootstrap=0", "eval.ks=[10]", "train.select_metric=recall@10",
                                   "wandb.enabled=false"])
    m = run_train(cfg, tmp_path / "run")
    assert m["sequence"]["users_without_history"]["test"] == 6
    # every user's test item is a query (minus those already bought in train, masked out); the
    # one-interaction users have no train row, so theirs form the cold_user slice, not "all"
    n = m["n_queries"]["test"]
    assert n["cold_user"] == 6
    assert n["all"] + n["cold_user"] + m["eval_info"]["test"]["n_dropped_queries"] == 60


def test_sasrec_recovers_planted_transitions_that_an_id_model_cannot(tmp_path):
    """Next item = succ[previous] w.p. 0.9: only the order tells it, so SASRec (CE) must beat
    MF on the very same test queries by a wide margin."""
    d = make_sequential(tmp_path / "ds", n_users=200, n_items=100, length=(5, 9), seed=1)
    out = {}
    for ue in ("id", "sasrec"):
        cfg = load_train_config(None, [
            f"data.dir={d}", "model.encoder=mf", f"model.user_encoder={ue}", "model.dim=16",
            "model.seq_blocks=1", "model.seq_len=6", "model.reg=0", "train.epochs=10",
            "train.batch_size=64", "train.lr=0.01",
            "train.device=cpu", "train.patience=5", "eval.bootstrap=0", "eval.ks=[10]",
            "train.select_metric=recall@10", "wandb.enabled=false"])
        out[ue] = run_train(cfg, tmp_path / ue)["test"]["all"]["recall@10"]
    assert out["sasrec"] > 0.75 and out["sasrec"] > out["id"] + 0.2, out  # seen: 0.90 vs 0.52


@pytest.mark.parametrize("cls_name", ["SASRecUserEncoder", "BERT4RecUserEncoder"])
def test_padding_is_invisible_to_the_state(cls_name):
    """Masked padding keys: the state after a history does not depend on how much padding is
    in front of it (so trimming batches to their longest row changes nothing)."""
    from mrs.models import sequential

    torch.manual_seed(0)
    enc = getattr(sequential, cls_name)(n_users=2, n_items=10, dim=8, seq_len=6, blocks=2, heads=2,
                                        dropout=0.0).eval()
    items = torch.randn(10, 8)
    hist = torch.tensor([[10, 10, 10, 3, 4, 5], [10, 10, 10, 10, 10, 10]])  # user 1: no history
    enc.set_history(hist)
    with torch.no_grad():
        trimmed = enc.query_rows(torch.tensor([0, 1]), None, items)   # trims to the longest row
        full = enc.encode_seq(enc.query_seq(hist), items)[:, -1]       # all 6 columns
    assert torch.allclose(trimmed, full, atol=1e-5) and torch.isfinite(full).all()
    assert not torch.allclose(full[0], full[1])  # a history changes the state


def _captured_negatives(tiny_data, monkeypatch, **kw):
    """The negatives one sequential BPR step draws (dropout off, so scores are deterministic)."""
    from mrs.train.trainer import Trainer, seed_everything

    cfg = load_train_config(None, tiny_overrides(
        tiny_data, model__user_encoder="sasrec", model__encoder="mf", model__loss="bpr",
        model__seq_len=6, model__seq_dropout=0.0, train__negatives="dynamic", train__n_candidates=16,
        **kw))
    tr = Trainer.build(cfg, seed_everything(0), torch.device("cpu"))
    seen = {}
    real = tr.model.training_loss

    def capture(p, emb):
        seen["pos"], seen["neg"] = p.pos.clone(), p.neg.clone()
        return real(p, emb)

    monkeypatch.setattr(tr.model, "training_loss", capture)
    torch.manual_seed(12345)  # the global RNG must not matter: draws come from the trainer's generator
    tr.train_step(torch.arange(len(tr.seq.train)))
    return seen["pos"], seen["neg"]


def test_sequential_dynamic_negatives_use_temperature_generator_and_never_the_target(tiny_data, monkeypatch):
    """Issue 19: sequential BPR with dynamic negatives ignored train.temperature, drew from the
    global RNG and could pick the target itself."""
    pos, hardest = _captured_negatives(tiny_data, monkeypatch, train__hard="hardest")
    assert not (hardest == pos).any()
    _, cold = _captured_negatives(tiny_data, monkeypatch, train__hard="softmax", train__temperature=1e-6)
    assert torch.equal(cold, hardest)  # softmax(score / T) with T -> 0 is the hardest pick
    _, warm = _captured_negatives(tiny_data, monkeypatch, train__hard="softmax", train__temperature=1e6)
    assert not torch.equal(warm, hardest) and not (warm == pos).any()
    _, again = _captured_negatives(tiny_data, monkeypatch, train__hard="softmax", train__temperature=1e6)
    assert torch.equal(warm, again)  # the trainer's generator alone decides


def test_the_no_history_state_is_trained(tiny_data):
    """Issue 19: the state a user without history is queried with never carried a loss. Now each
    training row adds the empty history predicting the user's first train item."""
    from mrs.train.trainer import Trainer, seed_everything

    cfg = load_train_config(None, tiny_overrides(tiny_data, model__user_encoder="sasrec", model__encoder="mf",
                                                 model__seq_len=6, model__seq_dropout=0.0))
    tr = Trainer.build(cfg, seed_everything(0), torch.device("cpu"))
    ue, item = tr.model.user_encoder, tr.model.item_emb.weight
    before = ue.empty_state(item).detach().clone()
    for _ in range(5):
        tr.train_step(torch.arange(len(tr.seq.train)))
    with torch.no_grad():
        after = ue.empty_state(tr.model.item_emb.weight)
        first = tr.seq.train.first
        # it moved towards the first items: their mean score rank under the empty state improves
        scores = after @ tr.model.item_emb.weight.T
    assert not torch.allclose(before, after)
    rank = (scores[0][None, :] > scores[0][first][:, None]).sum(1).float().mean()
    assert rank < tr.ds.n_items / 2, rank


def test_item_chunked_ranking_runs_the_transformer_once_per_query_batch(tiny_data, monkeypatch):
    """Issue 19: with item-chunked (memory-bounded) ranking the transformer re-ran once per item
    chunk; the queries are now folded once per query batch. Same metrics either way."""
    from mrs.train.trainer import Trainer, seed_everything

    out = {}
    for budget in (0, 0.002):  # auto (whole rows) | a budget that forces a few items per chunk
        cfg = load_train_config(None, tiny_overrides(tiny_data, model__user_encoder="sasrec", model__seq_len=6,
                                                     eval__bootstrap=0, eval__max_memory_mb=budget))
        tr = Trainer.build(cfg, seed_everything(0), torch.device("cpu"))
        calls = []
        real = tr.model.user_encoder.history_rows
        monkeypatch.setattr(tr.model.user_encoder, "history_rows", lambda h, e, *a: calls.append(len(h)) or real(h, e, *a))
        res = tr.evaluate("valid", ci=False)
        out[budget] = (res.metrics, sum(calls), len(calls), res.info)
    (m0, rows0, _, _), (m1, rows1, n1, info) = out[0], out[0.002]
    assert m1 == m0
    assert rows1 == rows0  # every query's state computed exactly once, chunked or not
