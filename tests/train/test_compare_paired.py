"""``mrs compare`` with seeds: both query kinds, mean ± sd, paired differences; the per-user
query's expected context; per-query values saved per run."""
from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch

from mrs.cli import main as mrs_main
from mrs.eval import EvalResult, paired_diff_ci
from mrs.models.cp import CPScorer
from mrs.train.compare_report import averaged


def test_expected_context_is_the_mean_score_over_contexts():
    torch.manual_seed(0)
    cp = CPScorer([3, 4], dim=5)
    with torch.no_grad():
        for f in cp.factors:
            f.normal_()
    u, items = torch.randn(2, 5), torch.randn(7, 5)
    modes = torch.tensor([[0, 2], [1, 3]])  # context value ignored below, time kept
    p = torch.tensor([0.5, 0.3, 0.2])
    got = cp.rank_all(cp.query(u, modes, [p, None]), items)  # (2, 7)
    want = sum(p[c] * cp.rank_all(cp.query(u, torch.stack([torch.full((2,), c), modes[:, 1]], 1)), items)
               for c in range(3))
    assert torch.allclose(got, want, atol=1e-5)


def test_paired_interval_excludes_zero_where_marginal_ones_overlap():
    rng = np.random.default_rng(0)
    base = rng.random(400)  # per-query values vary a lot between queries ...
    better = np.clip(base + 0.02 + rng.normal(0, 0.01, 400), 0, None)  # ... the gain is steady
    res = [EvalResult("test", {}, {}, {"all": 400}, {"queries_sha1": "x"}, per_query={"all": {"recall@20": v}},
                      query_rows={"all": np.arange(400)}) for v in (better, base)]
    d = paired_diff_ci(*res, key="recall@20", n_boot=500)
    assert d["lo"] > 0 and abs(d["diff"] - 0.02) < 0.005
    from mrs.eval.bootstrap import bootstrap_ci
    (lo_a, hi_a), (lo_b, hi_b) = bootstrap_ci(np.stack([better, base], 1), 500)
    assert lo_a < hi_b  # the two marginal intervals overlap
    avg = averaged([res[0], res[1]])  # seed averaging of per-query values
    assert np.allclose(avg.per_query["all"]["recall@20"], (better + base) / 2)


def test_run_saves_both_query_kinds_and_per_query_values(tiny_data, tmp_path):
    from tests.train.conftest import tiny_overrides
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    from mrs.data.prepared import load_prepared
    from mrs.train.refit import train_valid_view, wants_refit

    ds = load_prepared(tiny_data)
    view = train_valid_view(ds)
    assert (view.interactions.split == 1).sum() == 0
    assert (view.interactions.split == 0).sum() == ds.meta["splits"]["train"] + ds.meta["splits"]["valid"]
    assert (view.interactions.split == 2).sum() == ds.meta["splits"]["test"]
    assert not wants_refit("auto", ds) and wants_refit("train+valid", ds) and not wants_refit("train", ds)
    # the final test model refit on train + valid for the best epoch count
    cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder="mf", model__modes=True,
                                                 wandb__enabled=False, eval__ks=[20],
                                                 train__final_fit="train+valid"))
    m = run_train(cfg, tmp_path / "run")
    assert m["final_fit"] == "train+valid"
    assert set(m["by_query"]) == {"user_mode", "user"}
    assert m["by_query"]["user_mode"]["test"] == m["test"]  # the primary kind is the top-level table
    pq = pd.read_parquet(tmp_path / "run" / "per_query.parquet")
    for kind in ("user_mode", "user"):
        sub = pq[(pq.query_kind == kind) & (pq.split == "test") & (pq.slice == "all")]
        assert len(sub) == m["by_query"][kind]["n_queries"]["test"]["all"]
        assert np.isclose(sub["recall@20"].mean(), m["by_query"][kind]["test"]["all"]["recall@20"], atol=1e-6)
    # per-user queries: one per user with a held-out item
    users = pq[(pq.query_kind == "user") & (pq.split == "test") & (pq.slice == "all")].user
    assert users.is_unique


@pytest.mark.slow  # ~60 s on the shared 2-core box: 8 runs
def test_compare_with_seeds_reports_both_kinds_and_paired_diffs(tiny_data, tmp_path, capsys):
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"""
data: {{dir: {tiny_data}}}
model: {{dim: 8}}
train: {{epochs: 1, batch_size: 512, lr: 0.01, device: cpu}}
eval: {{bootstrap: 50, ks: [20]}}
report: [recall@20]
variants:
  - {{name: mf, set: {{model.encoder: mf, model.modes: false}}}}
  - {{name: mf+cp, set: {{model.encoder: mf, model.modes: true}}}}
""")
    out = tmp_path / "cmp"
    assert mrs_main(["compare", "--config", str(cfg), "--out", str(out), "--no-wandb", "--seeds", "0,1"]) == 0
    for v in ("mf", "mf+cp"):
        for s in (0, 1):
            run = out / "runs" / v / f"seed{s}"
            m = json.loads((run / "metrics.json").read_text())
            assert set(m["by_query"]) == {"user_mode", "user"}
            pq = pd.read_parquet(run / "per_query.parquet")
            assert set(pq.query_kind) == {"user_mode", "user"} and "recall@20" in pq
            n_user = pq[(pq.query_kind == "user") & (pq.split == "test") & (pq.slice == "all")]
            assert len(n_user) == m["by_query"]["user"]["n_queries"]["test"]["all"]
            assert np.isclose(n_user["recall@20"].mean(), m["by_query"]["user"]["test"]["all"]["recall@20"], atol=1e-6)
    md = (out / "compare.md").read_text()
    assert "(`user_mode`)" in md and "(`user`)" in md and "2 seeds" in md and " ± " in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    got = {(r["variant"], r["query_kind"]) for r in rows}
    assert got == {(v, k) for v in ("mf", "mf+cp") for k in ("user_mode", "user")}
    cp_all = [r for r in rows if r["variant"] == "mf+cp" and r["slice"] == "all"]
    assert all(r["diff"] and float(r["diff_lo"]) <= float(r["diff"]) <= float(r["diff_hi"]) for r in cp_all)
    for r in cp_all:  # the mean over seeds is each seed's metrics.json value averaged
        vals = [json.loads((out / "runs/mf+cp" / f"seed{s}" / "metrics.json").read_text())["by_query"]
                [r["query_kind"]]["test"]["all"]["recall@20"] for s in (0, 1)]
        assert np.isclose(float(r["value"]), np.mean(vals)) and np.isclose(float(r["sd"]), np.std(vals, ddof=1))
