"""Benchmark: peak memory of full-ranking evaluation under ``eval.max_memory_mb``, by catalogue size.

    python experiments/benchmarks/bench_eval_memory.py [--queries 2048] [--dim 64]

For each catalogue (Sports 18,357 items; Amazon Clothing 5-core 715K; 1M) and budget (auto, and
256 MiB), a child process builds random ``(Q, d)`` query rows and ``(I, d)`` item rows, masks 20
seen items per query, and ranks the top 50 with the block plan of :mod:`mrs.eval.budget`. It
prints the plan (query batch B, item chunk C), the growth of peak RSS over the RSS before ranking
(VmHWM reset through ``/proc/self/clear_refs``), and the ranking time. The row "unbudgeted"
is the old rule (``eval.batch_size`` = 4,096 full rows) whose block size is computed, not run:
it would not fit in this machine's memory on the large catalogues.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time, numpy as np, torch
from mrs.eval.budget import plan_blocks, resolve_budget_mb
from mrs.eval.ranking import Csr, rank_topk
n_items, n_q, d, budget = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
budget = resolve_budget_mb(budget, "cpu")
torch.manual_seed(0)
item, user = torch.randn(n_items, d), torch.randn(n_q, d)
rng = np.random.default_rng(0)
seen = Csr.from_pairs(np.repeat(np.arange(n_q), 20), rng.integers(0, n_items, 20 * n_q), n_q)
def fn(u, m, items=None):
    return user[u] @ (item if items is None else item[items]).T
plan = plan_blocks(n_q, n_items, 50, budget, 4096)
status = lambda key: next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
t0 = time.perf_counter()
rank_topk(fn, np.arange(n_q), np.zeros((n_q, 0)), 50, seen=seen, batch_size=plan.query_batch,
          n_items=n_items, item_chunk=plan.item_chunk, progress=False)
print(json.dumps({"budget_mb": budget, "B": plan.query_batch, "C": plan.item_chunk,
                  "peak_mb": (status("VmHWM") - before) / 2**20, "s": time.perf_counter() - t0}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args()
    print(f"{'items':>9} {'budget MiB':>10} {'B':>5} {'C':>9} {'peak growth MiB':>15} {'rank s':>7}")
    for n_items in (18_357, 715_000, 1_000_000):
        print(f"{n_items:>9,} {'unbudgeted':>10} {4096:>5} {n_items:>9,} "
              f"{4096 * n_items * 4 / 2**20:>15,.0f} {'(not run)':>7}")
        for budget in (0, 256):
            out = subprocess.run([sys.executable, "-c", CHILD, str(n_items), str(args.queries),
                                  str(args.dim), str(budget)], capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-1500:], file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            label = f"auto {r['budget_mb']:.0f}" if budget == 0 else f"{budget}"
            print(f"{n_items:>9,} {label:>10} {r['B']:>5} {r['C']:>9,} {r['peak_mb']:>15,.0f} {r['s']:>7.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
