"""Memory-bounded ranking: the block plan, item-chunked top-k equal to full rows, and peak memory
of a 1M-item catalogue within the budget."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.eval import EvalConfig, Evaluator
from mrs.eval.budget import CELL_BYTES, MIN_QUERIES, plan_blocks
from mrs.eval.ranking import Csr, rank_topk
from .helpers import random_dataset


def test_plan_takes_full_rows_when_they_fit_and_chunks_items_when_not():
    # 4 MiB budget, 1000 items: a full row costs 8,000 bytes -> 524 rows fit (4,194,304 // 8,000)
    p = plan_blocks(n_queries=10_000, n_items=1000, k=20, budget_mb=4, max_batch=4096)
    assert (p.query_batch, p.item_chunk) == (524, 1000)
    # 1 MiB: 131 full rows < MIN_QUERIES = 256 -> 256 queries x 512 items (1 MiB / (256 * 8))
    p = plan_blocks(n_queries=10_000, n_items=1000, k=20, budget_mb=1, max_batch=4096)
    assert MIN_QUERIES == 256 and (p.query_batch, p.item_chunk) == (256, 512)
    # the batch cap and the number of queries bound it from above
    assert plan_blocks(50, 1000, 20, 1024, 4096).query_batch == 50
    assert plan_blocks(10_000, 1000, 20, 1024, 64).query_batch == 64
    # 1M items, 64 MiB: fewer than MIN_QUERIES full rows fit -> MIN_QUERIES queries, chunked items
    p = plan_blocks(100_000, 1_000_000, 20, 64, 4096)
    assert p.query_batch == MIN_QUERIES
    assert p.item_chunk == 64 * 2**20 // (MIN_QUERIES * CELL_BYTES) == 32768
    assert p.block_bytes(1_000_000) <= 64 * 2**20
    # a budget below one query x k items still returns a workable plan
    p = plan_blocks(10, 1_000_000, 50, 1e-6, 4096)
    assert p.query_batch == 1 and p.item_chunk == 50


def _scores(n_users=37, n_items=53, seed=0):
    rng = np.random.default_rng(seed)
    S = torch.from_numpy(rng.standard_normal((n_users, n_items)).astype(np.float32))

    def fn(u, m, items=None):
        return S[u] if items is None else S[u][:, items]
    return S, fn


@pytest.mark.parametrize("chunk", [1, 5, 10, 13, 52])
def test_item_chunked_topk_equals_full_rows(chunk):
    S, fn = _scores()
    rng = np.random.default_rng(1)
    seen = Csr.from_pairs(rng.integers(0, 37, 400), rng.integers(0, 53, 400), 37)
    users, modes = np.arange(37), np.zeros((37, 0))
    full = rank_topk(fn, users, modes, 10, seen=seen, batch_size=8)
    got = rank_topk(fn, users, modes, 10, seen=seen, batch_size=8, n_items=53, item_chunk=chunk)
    np.testing.assert_array_equal(got, full)
    ref = S.clone()
    ref[torch.from_numpy(seen.row_ids()), torch.from_numpy(seen.indices)] = -float("inf")
    np.testing.assert_array_equal(got, ref.topk(10, dim=1).indices.numpy())


def test_chunked_ranking_needs_a_score_fn_that_takes_items():
    S, _ = _scores()
    with pytest.raises(MrsError, match="items=slice"):
        rank_topk(lambda u, m: S[u], np.arange(3), np.zeros((3, 0)), 5, n_items=53, item_chunk=10)


def test_evaluator_metrics_unchanged_under_a_tiny_budget(tmp_path):
    ds = random_dataset(tmp_path, n_users=40, n_items=60)
    rng = np.random.default_rng(0)
    S = torch.from_numpy(rng.standard_normal((40, 60)).astype(np.float32))

    def fn(u, m, items=None):
        return S[u] if items is None else S[u][:, items]
    base = dict(bootstrap=0, ks=[5, 10])
    ev_full = Evaluator(ds, "test", EvalConfig(**base))
    ev_tiny = Evaluator(ds, "test", EvalConfig(**base, max_memory_mb=0.001))  # ~1 KB: chunks of items
    plan = ev_tiny.plan()
    assert plan.item_chunk < 60 and ev_full.plan().item_chunk == 60
    np.testing.assert_array_equal(ev_tiny.rank(fn), ev_full.rank(fn))
    assert ev_tiny(fn, ci=False).metrics == ev_full(fn, ci=False).metrics
    # a score function without items= still works: full rows, smallest batch the budget allows
    np.testing.assert_array_equal(ev_tiny.rank(lambda u, m: S[u]), ev_full.rank(fn))


# Runs in a fresh process so that the peak RSS (VmHWM, reset through /proc/self/clear_refs) only
# sees the ranking, not what earlier tests left in this process's heap. The budgeted run goes
# first; the control's one big block is larger than anything freed before it, so it must grow.
_PEAK = r"""
import json, sys, numpy as np, torch
from mrs.eval.budget import plan_blocks
from mrs.eval.ranking import Csr, rank_topk
n_items, d = 1_000_000, 8
torch.manual_seed(0)
item = torch.randn(n_items, d)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
torch.set_num_threads(1)
out = []
for n_q, budget in ((int(sys.argv[1]), float(sys.argv[2])), (int(sys.argv[3]), float(sys.argv[4]))):
    user = torch.randn(n_q, d)
    rng = np.random.default_rng(0)
    seen = Csr.from_pairs(rng.integers(0, n_q, 20 * n_q), rng.integers(0, n_items, 20 * n_q), n_q)
    fn = lambda u, m, items=None: user[u] @ (item if items is None else item[items]).T
    plan = plan_blocks(n_q, n_items, 20, budget, 4096)
    rank_topk(fn, np.arange(2), np.zeros((2, 0)), 20, n_items=n_items, item_chunk=1000)  # warm-up
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")    # reset VmHWM to the current RSS
    top = rank_topk(fn, np.arange(n_q), np.zeros((n_q, 0)), 20, seen=seen, batch_size=plan.query_batch,
                    n_items=n_items, item_chunk=plan.item_chunk)
    out.append({"peak_growth": status("VmHWM") - before, "B": plan.query_batch,
                "C": plan.item_chunk, "top0": top[0, :3].tolist()})
print(json.dumps(out))
"""


def test_million_item_catalogue_stays_under_the_budget():
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    budget = 64
    # 128 queries x 1M items would be 512 MB as one float block; the control lets 48 full rows
    # (192 MB of scores) through, so the measurement can fail
    out = subprocess.run([sys.executable, "-c", _PEAK, "128", str(budget), "48", "4096"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "clear_refs" in out.stderr:
        pytest.skip("cannot reset the peak RSS here")
    assert out.returncode == 0, out.stderr[-2000:]
    res, ctl = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["C"] < 1_000_000                # the plan splits the items
    assert res["peak_growth"] <= budget * 2**20, res
    assert ctl["C"] == 1_000_000 and ctl["peak_growth"] > 2 * budget * 2**20, ctl
