"""ANN retrieval vs exact full ranking on served models: recall of the served list against the
exact CP ranking and time per request, both measured in the same run.

Factors are generated (no Sports model is trained here): low-rank user and item factors plus
noise, lognormal item norms (popular items are long), CP mode factors around one, written as a
real model directory (``mrs.serve.export.write_model_dir``) and served by the same code as
``mrs serve``.

    python experiments/benchmarks/bench_serve_ann.py --items 18357 --users 35598   # Sports-sized
    python experiments/benchmarks/bench_serve_ann.py --items 1000000 --users 20000 --queries 500
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from mrs.serve.index import IndexSpec


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_model_dir(out: Path, n_users: int, n_items: int, dim: int = 64, seed: int = 0) -> Path:
    from mrs.io import atomic_dir
    from mrs.serve.export import FORMAT, write_model_dir

    rng = np.random.default_rng(seed)
    latent = 16
    A = rng.normal(size=(latent, dim)).astype(np.float32) / np.sqrt(latent)
    items = rng.normal(size=(n_items, latent)).astype(np.float32) @ A
    items += 0.5 * rng.normal(size=(n_items, dim)).astype(np.float32)
    items *= np.exp(rng.normal(0, 0.4, size=(n_items, 1))).astype(np.float32)  # popularity in the norm
    users = rng.normal(size=(n_users, latent)).astype(np.float32) @ A + 0.5 * rng.normal(size=(n_users, dim)).astype(np.float32)
    cards = {"context": 2, "time": 12}
    t = {"user": users.astype(np.float32), "item": items.astype(np.float32),
         "item_counts": rng.zipf(1.5, n_items).clip(0, 10 ** 6).astype(np.float32),
         "seen_indptr": np.arange(n_users + 1, dtype=np.int64) * 5,
         "seen_indices": rng.integers(0, n_items, n_users * 5).astype(np.int32)}
    t["item_counts_by_mode0"] = np.stack([t["item_counts"]] * 2)
    modes = []
    for name, n in cards.items():
        t[f"mode.{name}"] = (1 + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
        modes.append({"name": name, "labels": [f"{name}{j}" for j in range(n)], "train_counts": [1] * n})
    meta = {"format": FORMAT, "created": "bench", "n_users": n_users, "n_items": n_items, "dim": dim,
            "modes": modes, "user_encoder": "id", "sequential": False, "content": None,
            "dataset": {"name": "bench", "source": "generated"}, "source": {"generator": __file__},
            "user_ids": [f"u{j}" for j in range(n_users)], "item_ids": [f"{j:010d}" for j in range(n_items)]}
    with atomic_dir(out) as tmp:
        write_model_dir(tmp, t, meta)
    return out


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g[g >= 0]) & set(w)) / len(w) for g, w in zip(got, want)]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=18357)
    p.add_argument("--users", type=int, default=35598)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_serve"))
    p.add_argument("--ef-search", type=int, default=IndexSpec().ef_search)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--hnsw-m", type=int, default=32)
    args = p.parse_args()
    import faiss
    import torch

    from mrs.serve.index import AnnIndex
    from mrs.serve.model import ServedModel
    from mrs.serve.service import RecommendService

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)  # one request = one thread, as the server's workers
    model_dir = args.out / f"model-{args.items}"
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} items={args.items} users={args.users} dim=64",
          flush=True)
    if not (model_dir / "manifest.json").is_file():
        t = time.perf_counter()
        make_model_dir(model_dir, args.users, args.items)
        print(f"generated model dir in {time.perf_counter() - t:.1f} s")
    r0 = rss_mb()
    model = ServedModel.load(model_dir)
    r1 = rss_mb()
    spec = IndexSpec(ef_search=args.ef_search, ef_construction=args.ef_construction, hnsw_m=args.hnsw_m)
    cached = (model_dir / "index" / f"{spec.name(args.items)}.faiss").is_file()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # the build uses every core
    t = time.perf_counter()
    index = AnnIndex.load_or_build(model_dir / "index", model.item.numpy(), spec)
    build_s = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    r2 = rss_mb()
    print(f"index {spec.name(args.items)}: {'loaded' if cached else 'built'} in {build_s:.1f} s")
    print(f"memory (RSS): model {r1 - r0:.0f} MB, index {r2 - r1:.0f} MB, process total {r2:.0f} MB "
          f"(peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    svc = RecommendService(model, index, "folded")
    rng = np.random.default_rng(1)
    users = rng.choice(args.users, args.queries, replace=False)
    labels = [{"context": f"context{rng.integers(2)}", "time": f"time{rng.integers(12)}"} for _ in users]

    def per_request(retrieval: str, k: int, candidates: int = 300) -> tuple[np.ndarray, float]:
        svc.candidates = candidates
        out, t = [], time.perf_counter()
        for u, lab in zip(users, labels):
            out.append(svc.rank(np.array([u]), lab, k, retrieval=retrieval).items[0])
        return np.stack(out), (time.perf_counter() - t) / len(users) * 1e3

    rows = []
    for k in (12, 20):
        exact, t_exact = per_request("exact", k)
        folded, t_fold = per_request("folded", k)
        rows.append((k, "exact", "-", 1.0, t_exact, 1.0))
        rows.append((k, "folded", f"ef={args.ef_search}", recall(folded, exact), t_fold, t_exact / t_fold))
        for n in (100, 300, 1000):
            two, t_two = per_request("two_stage", k, n)
            rows.append((k, "two_stage", f"N={n}", recall(two, exact), t_two, t_exact / t_two))
    print(f"\n{'k':>3} {'retrieval':<10} {'setting':<8} {'recall vs exact':>15} {'ms/request':>11} {'speed-up vs exact':>18}")
    for k, name, s, rec, ms, ratio in rows:
        print(f"{k:>3} {name:<10} {s:<8} {rec:>15.4f} {ms:>11.3f} {ratio:>17.1f}x")
    fold20 = next(r for r in rows if r[0] == 20 and r[1] == "folded")
    print(f"\ntarget recall@20 of folded >= 0.99: {'met' if fold20[3] >= 0.99 else 'MISSED'} ({fold20[3]:.4f}); "
          f"speed-up {fold20[5]:.1f}x (target >= 10x at 1M items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
