"""FREEDOM's item kNN graph search: exact (mrs.graph.knn_edges) and approximate (faiss IVF,
mrs.knn.ivf_knn_edges): time, peak RSS and recall at 100K and 1M items.

    python experiments/benchmarks/bench_knn.py [--sizes 100000,1000000] [--dim 384] [--sample-rows 5000]
    python experiments/benchmarks/bench_knn.py --sizes 100000 --sample-rows 10000 --dense-n 0 \
        --ivf-sizes 100000,1000000 [--nprobe 16,4] [--recall-rows 1000]

IVF (``--ivf-sizes``): the whole graph is built and searched (index training, adding, every
item's k = 10 neighbours), measured, never extrapolated; recall@10 against exact neighbours
computed for ``--recall-rows`` random rows (exact for a sample is cheap: rows x I x d). The ratio
to the exact search uses the exact run of the same size in the same invocation (``--sizes``).

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
import logging
import os
import resource
import subprocess
import sys
import time


def features(n: int, dim: int):
    import torch

    torch.manual_seed(0)
    # clustered features (as real content is): 1,000 centres plus noise, built in place in
    # blocks so generating them adds no copy to the peak
    centres = torch.randn(1000, dim)
    x = torch.empty(n, dim)  # (n, d) float32
    for s in range(0, n, 65536):
        blk = x[s:s + 65536]
        blk.normal_().mul_(0.5).add_(centres[torch.randint(0, 1000, (len(blk),))])
    return x


def exact_rows(x, rows, k: int = 10):
    """Exact top-k cosine neighbours (self included) of ``rows``, 64 query rows at a time."""
    import torch

    inv = x.norm(dim=1).clamp(min=1e-12).reciprocal()
    out = []
    for s in range(0, len(rows), 64):
        r = rows[s:s + 64]
        out.append(((x[r] * inv[r, None]) @ x.T * inv).topk(k, dim=1).indices)
    return torch.cat(out)  # (len(rows), k)


def ivf_child(n: int, dim: int, nprobe: int, recall_rows: int) -> dict:
    import torch

    from mrs import knn

    x = features(n, dim)
    phases: list[str] = []  # mrs.knn logs the time of k-means, add and search

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            phases.append(record.getMessage())

    logging.getLogger("mrs.knn").addHandler(Keep())
    logging.getLogger("mrs.knn").setLevel(logging.INFO)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB
    search = knn.KnnSearch(kind="ivf", nprobe=nprobe)
    t0 = time.perf_counter()
    row, col = knn.ivf_knn_edges(x, 10, search=search)
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    sample = torch.from_numpy(__import__("numpy").random.default_rng(1).choice(n, recall_rows, replace=False))
    t1 = time.perf_counter()
    want = exact_rows(x, sample)  # (R, 10)
    exact_secs = time.perf_counter() - t1
    got = col.view(n, 10)[sample]  # (R, 10)
    rec = float((got[:, :, None] == want[:, None, :]).any(1).float().mean())
    return {"n": n, "secs": secs, "peak_gb": rss, "before_gb": before, "nlist": search.n_lists(n),
            "nprobe": nprobe, "recall": rec, "recall_rows": recall_rows, "exact_sample_secs": exact_secs,
            "edges": int(row.numel()), "threads": torch.get_num_threads(), "phases": phases}


def child(n: int, dim: int, sample_rows: int, full_max: int, dense: bool) -> dict:
    import torch

    from mrs import graph

    x = features(n, dim)
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


def run(n: int, args, dense: bool = False, ivf: bool = False, nprobe: int = 16) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(args.dim), "--sample-rows",
           str(args.sample_rows), "--full-max", str(args.full_max), "--nprobe", str(nprobe),
           "--recall-rows", str(args.recall_rows)] + (["--dense"] if dense else []) + (["--ivf"] if ivf else [])
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
    ap.add_argument("--ivf-sizes", default="", help="sizes for the IVF search (full build + search)")
    ap.add_argument("--nprobe", default="16", help="IVF cells scanned per query; a comma list runs each")
    ap.add_argument("--recall-rows", type=int, default=1000)
    ap.add_argument("--ivf", action="store_true")
    args = ap.parse_args()
    if args.child:
        out = (ivf_child(args.child, args.dim, int(args.nprobe), args.recall_rows) if args.ivf
               else child(args.child, args.dim, args.sample_rows, args.full_max, args.dense))
        print(json.dumps(out))
        return
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} dim={args.dim} k=10 "
          f"block memory={__import__('mrs.graph', fromlist=['x']).KNN_MEMORY / 2**20:.0f} MiB")
    if args.dense_n:
        dense_baseline(args)
    exact = {}
    for n in (int(s) for s in args.sizes.split(",") if s):
        exact[n] = r = run(n, args)
        how = "measured" if r["rows"] == n else f"extrapolated from {r['rows']:,} rows in {r['secs']:.1f} s"
        dense_gb = n * n * 4 / 1e9
        print(f"exact n={n:,}: {r['est_secs']:.0f} s ({how}), peak RSS {r['peak_gb']:.2f} GB, of which "
              f"{r['before_gb']:.2f} GB before the search (python, torch, features {r['feat_gb']:.2f} GB): "
              f"the search added {r['peak_gb'] - r['before_gb']:.2f} GB (a dense I x I float32 "
              f"similarity would be {dense_gb:,.0f} GB)", flush=True)
    for n, nprobe in ((int(s), int(p)) for s in args.ivf_sizes.split(",") if s for p in args.nprobe.split(",")):
        r = run(n, args, ivf=True, nprobe=nprobe)
        ratio = (f"; exact/ivf time {exact[n]['est_secs'] / r['secs']:.1f}x (exact "
                 f"{'measured' if exact[n]['rows'] == n else 'extrapolated'} above)") if n in exact else ""
        print(f"ivf n={n:,} (IVF{r['nlist']},Flat, nprobe={r['nprobe']}, {r['threads']} threads): build+search "
              f"{r['secs']:.0f} s (measured, all {n:,} rows, {r['edges']:,} edges), peak RSS {r['peak_gb']:.2f} GB "
              f"(+{r['peak_gb'] - r['before_gb']:.2f} GB over the {r['before_gb']:.2f} GB before it); recall@10 "
              f"{r['recall']:.4f} vs exact on {r['recall_rows']:,} random rows (exact for them: "
              f"{r['exact_sample_secs']:.1f} s){ratio}", flush=True)
        for line in r["phases"]:
            print(f"  {line}", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


def dense_baseline(args) -> None:
    base_d = run(args.dense_n, args, dense=True)
    base_b = run(args.dense_n, args)
    print(f"baseline n={args.dense_n:,}: dense (original) {base_d['secs']:.1f} s, {base_d['peak_gb']:.2f} GB peak "
          f"(+{base_d['peak_gb'] - base_d['before_gb']:.2f} GB in the search); "
          f"blocked {base_b['secs']:.1f} s, {base_b['peak_gb']:.2f} GB peak (+{base_b['peak_gb'] - base_b['before_gb']:.2f} GB); "
          f"ratio blocked/dense: time {base_b['secs'] / base_d['secs']:.2f}x, peak RSS {base_b['peak_gb'] / base_d['peak_gb']:.2f}x",
          flush=True)


if __name__ == "__main__":
    main()
