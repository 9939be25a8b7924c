"""End to end: evaluate() on hand-built prepared datasets."""
import json

import numpy as np
import pytest
import torch

from mrs.config import load_config
from mrs.errors import MrsError
from mrs.eval import EvalConfig, Evaluator, evaluate, metrics_json

from .helpers import random_dataset, tiny, truth_matrix


def fixed(S):
    S = torch.as_tensor(S, dtype=torch.float32)
    return lambda u, m: S[u.cpu()].to(u.device)


def test_perfect_and_no_hit_rankings(tmp_path):
    ds = random_dataset(tmp_path)
    T = truth_matrix(ds, "test")
    cfg = EvalConfig(ks=[2, 5, 10], bootstrap=50, query="user")
    res = evaluate(fixed(T), ds, "test", cfg)
    for key, v in res.metrics["all"].items():
        if key.startswith("precision@"):   # 2 relevant per user: precision@K = 2/K when all hit
            assert v == pytest.approx(min(1.0, 2 / int(key.split("@")[1])))
        else:
            assert v == pytest.approx(1.0), key
    assert res.n_queries["all"] == 40
    res = evaluate(fixed(-T), ds, "test", cfg)     # relevant items ranked last
    assert all(v == 0.0 for v in res.metrics["all"].values())
    assert res.ci["all"]["recall@10"] == [0.0, 0.0]


def test_train_positive_masked_unless_repurchase_flag(tmp_path):
    ds = tiny(tmp_path)
    S = np.tile([10.0, 9, 8, 1, 2, 3], (3, 1))       # seen items score highest
    ev = Evaluator(ds, "test", EvalConfig(ks=[1, 3], query="user"))
    top = ev.rank(fixed(S))
    assert top.tolist() == [[5, 4, 3], [1, 5, 4]]      # u0 masks {0,1,2}; u1 masks {0,2,3}
    ev2 = Evaluator(ds, "test", EvalConfig(ks=[1, 3], query="user", mask_repurchase=False))
    assert ev2.rank(fixed(S)).tolist() == [[0, 1, 2]] * 3
    # without masking u2's repurchase of item 0 is a relevant hit at rank 1
    res = ev2(fixed(S))
    assert res.per_query["all"]["hit@1"].tolist() == [0.0, 0.0, 1.0]
    assert res.info["n_dropped_seen"] == 0 and ev.queries.n_dropped_seen == 1


def test_user_mode_queries_reward_context(tmp_path):
    ds = tiny(tmp_path)
    # u0 wants item 3 in the store (c=0) and item 4 online (c=1)
    def fn(u, m):
        s = torch.zeros(len(u), 6)
        s[:, 3] = torch.where(m[:, 0] == 0, 2.0, 1.0)
        s[:, 4] = torch.where(m[:, 0] == 1, 2.0, 1.0)
        s[:, 1] = 1.5
        return s
    by_mode = evaluate(fn, ds, "test", EvalConfig(ks=[1], query="user_mode", bootstrap=0))
    # (u0,c0)->{3}: 3 first; (u0,c1)->{4}: 4 first; (u1,c0)->{1}: 3 is u1's valid item, masked, so 1
    assert by_mode.per_query["all"]["recall@1"].tolist() == [1.0, 1.0, 1.0]
    assert by_mode.n_queries["all"] == 3 and by_mode.ci == {}
    by_user = evaluate(fn, ds, "test", EvalConfig(ks=[1], query="user", bootstrap=0))
    # u0 is one query with both items, ranked under its latest context (online): 4 first
    assert by_user.per_query["all"]["recall@1"].tolist() == [0.5, 1.0]


def test_slices_end_to_end(tmp_path):
    ds = tiny(tmp_path)   # train counts: item0 3, item1 1, item2 1, others 0
    cfg = EvalConfig(ks=[2], tail_threshold=1, mask_repurchase=False, bootstrap=20)
    res = evaluate(fixed(truth_matrix(ds)), ds, "test", cfg)
    # user_mode queries: (u0,c0)->{3} cold, (u0,c1)->{4} cold, (u1,c0)->{1} tail, (u2,c1)->{0} head
    assert res.n_queries == {"all": 4, "tail": 3, "head": 1, "cold": 2}
    assert res.metrics["cold"]["recall@2"] == 1.0
    doc = metrics_json({"test": res})
    assert set(doc) == {"test", "ci", "n_queries", "eval_info", "exposure"}
    assert set(doc["test"]) == {"all", "tail", "head", "cold"}
    # u0 scores items 3 and 4 alike, so per (user, mode) query recall@2 is 1 but NDCG may not be
    assert doc["ci"]["test"]["tail"]["recall@2"] == [1.0, 1.0]
    json.dumps(doc, allow_nan=False)


def test_empty_slice_is_null_and_valid_json(tmp_path):
    ds = tiny(tmp_path)
    res = evaluate(fixed(truth_matrix(ds)), ds, "test", EvalConfig(ks=[2], bootstrap=10))
    assert res.n_queries["cold"] == 2 and res.n_queries["head"] == 0
    assert res.metrics["head"]["recall@2"] is None and res.ci["head"]["recall@2"] == [None, None]
    json.dumps(metrics_json({"test": res}), allow_nan=False)
    assert "test/head/recall@2" not in res.flat() and "test/all/recall@2" in res.flat()


def test_sampled_protocol_differs_from_full(tmp_path):
    ds = random_dataset(tmp_path)
    anti = fixed(-truth_matrix(ds))   # relevant items score below every other item
    cfg = dict(ks=[5, 10], query="user", bootstrap=0)
    full = evaluate(anti, ds, "test", EvalConfig(**cfg))
    sampled = evaluate(anti, ds, "test", EvalConfig(**cfg, protocol="sampled", n_sampled=5))
    assert full.metrics["all"]["recall@10"] == 0.0
    # 2 relevant + 5 negatives: negatives fill the top 5, the relevant pair sits at ranks 6-7
    assert sampled.metrics["all"]["recall@5"] == 0.0 and sampled.metrics["all"]["recall@10"] == 1.0
    assert sampled.info["protocol"] == "sampled" and sampled.info["n_sampled"] == 5
    again = evaluate(anti, ds, "test", EvalConfig(**cfg, protocol="sampled", n_sampled=5))
    assert again.metrics == sampled.metrics


def test_random_scores_land_near_chance(tmp_path):
    ds = random_dataset(tmp_path, n_users=300, n_items=60)
    gen = torch.Generator().manual_seed(0)
    S = torch.rand(300, 60, generator=gen)
    res = evaluate(fixed(S), ds, "test", EvalConfig(ks=[10], query="user", bootstrap=200))
    # 2 relevant among the 60 - 8 = 52 rankable items: E[recall@10] = 10/52
    lo, hi = res.ci["all"]["recall@10"]
    assert lo < 10 / 52 < hi and hi - lo < 0.1


def test_config_from_yaml_overrides_and_errors(tmp_path):
    cfg = load_config(EvalConfig, overrides=["ks=[12]", "metrics=[map]", "query=user"])
    assert cfg.ks == [12] and cfg.metrics == ["map"]
    with pytest.raises(MrsError, match="eval.metrics"):
        EvalConfig(metrics=["auc"])
    with pytest.raises(MrsError, match="unknown config key 'topk'"):
        load_config(EvalConfig, overrides=["topk=5"])
    ds = tiny(tmp_path, modes=False)
    ds.interactions = ds.interactions[ds.interactions["split"] != 2]
    with pytest.raises(MrsError, match="no 'test' interactions"):
        Evaluator(ds, "test")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tmp_path):
    ds = random_dataset(tmp_path)
    S = torch.randn(ds.n_users, ds.n_items)
    cfg = EvalConfig(ks=[5], bootstrap=0)
    a = evaluate(fixed(S), ds, "test", cfg, device="cpu")
    b = evaluate(fixed(S), ds, "test", cfg, device="cuda")
    assert a.metrics == b.metrics
    S[3, 5] = float("nan")   # NaN detection relies on topk ranking NaN first on CUDA too
    with pytest.raises(MrsError, match="NaN"):
        evaluate(fixed(S), ds, "test", cfg, device="cuda")


def test_on_synth_prepared_counts_match_pandas(tmp_path):
    synth = pytest.importorskip("mrs.synth")
    ds = __import__("mrs.data", fromlist=["load_prepared"]).load_prepared(
        synth.make_prepared(tmp_path / "s", n_users=150, n_items=200, n_interactions=3000, seed=1))
    test, seen = ds.split("test"), ds.interactions[ds.interactions["split"] < 2]
    # ground truth for the counts, worked out independently with pandas joins
    fresh = test.merge(seen[["user", "item"]].drop_duplicates(), how="left", indicator=True)
    fresh = fresh[fresh["_merge"] == "left_only"]
    n_user_mode = len(fresh[["user", "context", "time"]].drop_duplicates())
    T = np.zeros((ds.n_users, ds.n_items), dtype=np.float32)
    T[fresh["user"], fresh["item"]] = 1.0
    res = evaluate(fixed(T), ds, "test", EvalConfig(ks=[50], query="user", bootstrap=20))
    assert res.n_queries["all"] == fresh["user"].nunique()
    assert res.info["n_dropped_seen"] == len(test) - len(fresh)
    counts = ds.item_train_counts()
    assert res.n_queries["cold"] == fresh.loc[counts[fresh["item"]] == 0, "user"].nunique()
    assert res.n_queries["tail"] == fresh.loc[counts[fresh["item"]] <= 20, "user"].nunique()
    top_users = fresh.groupby("user")["item"].nunique()
    if top_users.max() <= 50:   # the oracle's top 50 holds every fresh item: recall 1 everywhere
        for s in ("all", "tail", "head", "cold"):
            if res.n_queries[s]:
                assert res.metrics[s]["recall@50"] == pytest.approx(1.0)
    um = Evaluator(ds, "test", EvalConfig(query="auto"))
    assert um.queries.kind == "user_mode" and len(um) == n_user_mode


def test_paired_difference_interval(tmp_path):
    from mrs.eval import paired_diff_ci
    ds = random_dataset(tmp_path, n_users=200)
    T = torch.from_numpy(truth_matrix(ds))
    noise = torch.rand(ds.n_users, ds.n_items, generator=torch.Generator().manual_seed(0))
    ev = Evaluator(ds, "test", EvalConfig(ks=[10], query="user", bootstrap=0))
    good, bad = ev(fixed(T * 0.5 + noise)), ev(fixed(noise))
    d = paired_diff_ci(good, bad, "recall@10", n_boot=300)
    assert d["n"] == 200 and d["lo"] > 0      # the informed scorer wins, and the interval says so
    assert d["diff"] == pytest.approx(good.metrics["all"]["recall@10"] - bad.metrics["all"]["recall@10"])
    assert d["lo"] <= d["diff"] <= d["hi"]
    same = paired_diff_ci(bad, bad, "recall@10", n_boot=50)
    assert same["lo"] == same["hi"] == 0.0
    other = Evaluator(ds, "valid", EvalConfig(ks=[10], query="user", bootstrap=0))(fixed(noise))
    with pytest.raises(MrsError, match="same 'all' queries"):
        paired_diff_ci(good, other, "recall@10")


def test_exposure_coverage_and_tail_share(tmp_path):
    ds = tiny(tmp_path)   # tail (<= 1 train) = {1..5}, cold = {3, 4, 5}, head = {0}
    ev = Evaluator(ds, "test", EvalConfig(ks=[1, 2], tail_threshold=1, mask_repurchase=False))
    topk = np.array([[3, 4], [3, 0], [1, 3], [0, 2]])
    ex = ev.exposure(topk)
    assert ex["coverage@1"] == pytest.approx(3 / 6) and ex["coverage@2"] == pytest.approx(5 / 6)
    assert ex["tail_share@1"] == pytest.approx(0.75) and ex["tail_share@2"] == pytest.approx(0.75)
    assert ex["cold_share@2"] == pytest.approx(0.5) and ex["head_share@1"] == pytest.approx(0.25)
    res = ev.score(topk, ci=False)
    assert res.exposure == ex and metrics_json({"test": res})["exposure"]["test"] == ex


def test_scores_of_the_wrong_width_are_refused(tmp_path):
    ds = tiny(tmp_path)
    with pytest.raises(MrsError, match=r"shape \(3, 7\), expected \(3, 6\)"):
        evaluate(lambda u, m: torch.zeros(len(u), 7), ds, "test", EvalConfig(ks=[2]))


def test_cold_users_form_their_own_slice_and_leave_all(tmp_path):
    from .helpers import TINY, write
    # user 3 has no train rows: one test item (5)
    ds = write(tmp_path, TINY + [(3, 5, 10, 0, 2)], 4, 6)
    S = np.zeros((4, 6))
    S[3, 5] = 1.0  # a perfect list for the cold user, nothing useful for the others
    res = evaluate(fixed(S), ds, "test", EvalConfig(ks=[1], query="user", bootstrap=0))
    assert res.n_queries["cold_user"] == 1 and res.metrics["cold_user"]["recall@1"] == 1.0
    assert res.n_queries["all"] == 2  # users 0 and 1 (u2's only test item is a masked repurchase)
    assert res.metrics["all"]["recall@1"] < 1.0 and 3 not in res.query_rows["all"]
