"""FREEDOM's item kNN graph search (mrs.graph.knn_edges): time and peak RSS at 100K and 1M items.

    python experiments/benchmarks/bench_knn.py [--sizes 100000,1000000] [--dim 384] [--sample-rows 5000]

Each size runs in its own process (so peak RSS is that size's alone). The blocked search holds
the features plus one similarity block (``mrs.graph.KNN_MEMORY`` bytes), never the I x I matrix.
Sizes above ``--full-max`` time the search of ``--sample-rows`` query rows against all items and
extrapolate linearly (every block costs the same: b x I x d multiply-adds and a top-k over I);
peak RSS is measured, not extrapolated. Baseline, in the same run: the dense search of the
original (``sim = x @ x.T`` then ``topk``) at ``--dense-n`` items, and the features' own size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def child(n: int, dim: int, sample_rows: int, full_max: int, dense: bool) -> dict:
    import torch

    from mrs import graph

    torch.manual_seed(0)
    # clustered features (as real content is): 1,000 centres plus noise, built in place in
    # blocks so generating them adds no copy to the peak
    centres = torch.randn(1000, dim)
    x = torch.empty(n, dim)  # (n, d) float32
    for s in range(0, n, 65536):
        blk = x[s:s + 65536]
        blk.normal_().mul_(0.5).add_(centres[torch.randint(0, 1000, (len(blk),))])
    feat_gb = x.numel() * 4 / 1e9
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB
    t0 = time.perf_counter()
    if dense:  # the original's get_knn_adj_mat: the full similarity matrix, then topk
        xn = x / x.norm(dim=1, keepdim=True)
        sim = xn @ xn.T
        torch.topk(sim, 10, dim=-1)
        rows = n
    elif n <= full_max:
        graph.knn_edges(x, 10)
        rows = n
    else:
        graph.knn_edges(x, 10, rows=(0, sample_rows))
        rows = sample_rows
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB
    return {"n": n, "rows": rows, "secs": secs, "est_secs": secs * n / rows, "peak_gb": rss, "feat_gb": feat_gb,
            "before_gb": before}


def run(n: int, args, dense: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(args.dim), "--sample-rows",
           str(args.sample_rows), "--full-max", str(args.full_max)] + (["--dense"] if dense else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--sample-rows", type=int, default=5000)
    ap.add_argument("--full-max", type=int, default=200_000)
    ap.add_argument("--dense-n", type=int, default=20_000)
    ap.add_argument("--child", type=int)
    ap.add_argument("--dense", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dim, args.sample_rows, args.full_max, args.dense)))
        return
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} dim={args.dim} k=10 "
          f"block memory={__import__('mrs.graph', fromlist=['x']).KNN_MEMORY / 2**20:.0f} MiB")
    base_d = run(args.dense_n, args, dense=True)
    base_b = run(args.dense_n, args)
    print(f"baseline n={args.dense_n:,}: dense (original) {base_d['secs']:.1f} s, {base_d['peak_gb']:.2f} GB peak "
          f"(+{base_d['peak_gb'] - base_d['before_gb']:.2f} GB in the search); "
          f"blocked {base_b['secs']:.1f} s, {base_b['peak_gb']:.2f} GB peak (+{base_b['peak_gb'] - base_b['before_gb']:.2f} GB); "
          f"ratio blocked/dense: time {base_b['secs'] / base_d['secs']:.2f}x, peak RSS {base_b['peak_gb'] / base_d['peak_gb']:.2f}x")
    for n in (int(s) for s in args.sizes.split(",")):
        r = run(n, args)
        how = "measured" if r["rows"] == n else f"extrapolated from {r['rows']:,} rows in {r['secs']:.1f} s"
        dense_gb = n * n * 4 / 1e9
        print(f"n={n:,}: {r['est_secs']:.0f} s ({how}), peak RSS {r['peak_gb']:.2f} GB, of which "
              f"{r['before_gb']:.2f} GB before the search (python, torch, features {r['feat_gb']:.2f} GB): "
              f"the search added {r['peak_gb'] - r['before_gb']:.2f} GB (a dense I x I float32 "
              f"similarity would be {dense_gb:,.0f} GB)")


if __name__ == "__main__":
    main()
