"""Benchmark: full-ranking evaluation of every Amazon-Sports user (35,598 x 18,357 items, 64-d).

Scores come from random 64-d user/item embeddings (the evaluator's cost does not depend on the
model). Times, in one run on the same data:

- ``mrs``: ``Evaluator`` ranking (batched matmul, CSR mask via index_put, topk) + metrics for
  all four slices, then separately the 1000-replicate bootstrap;
- ``baseline``: the same batched matmul + topk, but the masks and hits built with a Python loop
  over the users of each batch (how evaluation loops are commonly hand-written).

Usage: python experiments/benchmarks/eval_full_ranking.py [--data DIR | --synthetic] [--threads N]
(without --data, Sports_and_Outdoors.txt from ../shared/data is prepared into a temp dir).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mrs.data import load_prepared
from mrs.data.prepared import PreparedDataset
from mrs.eval import EvalConfig, Evaluator

REPO = Path(__file__).resolve().parents[2]


def prepared_sports(tmp: str) -> Path:
    from mrs.prep.amazon2014 import Amazon2014Config, prepare_amazon2014
    src = REPO.parent / "shared" / "data" / "amazon2014" / "Sports_and_Outdoors.txt"
    return prepare_amazon2014(Amazon2014Config(sequences=str(src), out=f"{tmp}/sports"))


def synthetic_sports(seed: int = 0) -> PreparedDataset:
    """Random data of Sports' shape (35,598 users, 18,357 items, ~296k interactions, Zipf item
    popularity, per-user 8:1:1 split with >= 1 test item): for machines without ../shared/data."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 35_598, 18_357
    deg = 5 + rng.poisson(3.3, n_users)
    user = np.repeat(np.arange(n_users), deg)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    item = rng.choice(n_items, size=len(user), p=pop / pop.sum())
    inter = pd.DataFrame({"user": user, "item": item}).drop_duplicates(["user", "item"])
    rank = inter.groupby("user").cumcount().to_numpy()
    n = inter.groupby("user")["item"].transform("size").to_numpy()
    inter["split"] = np.where(rank < np.floor(0.8 * n), 0, np.where(rank == n - 1, 2, 1)).astype(np.int8)
    items = pd.DataFrame({"item": np.arange(n_items), "item_id": np.arange(n_items).astype(str)})
    users = pd.DataFrame({"user": np.arange(n_users), "user_id": np.arange(n_users).astype(str)})
    meta = {"name": "synthetic-sports-shape", "n_users": n_users, "n_items": n_items, "modes": {}}
    return PreparedDataset(Path("<memory>"), meta, inter.reset_index(drop=True), items, users)


def baseline(ev: Evaluator, U: torch.Tensor, I: torch.Tensor) -> float:
    """Recall@20 with per-user Python loops for the mask and the hits."""
    q, k = ev.queries, 20
    seen = [set(q.seen.indices[q.seen.indptr[u]:q.seen.indptr[u + 1]].tolist()) for u in range(q.seen.n_rows)]
    truth = [set(q.truth.indices[q.truth.indptr[r]:q.truth.indptr[r + 1]].tolist()) for r in range(len(q))]
    recalls = []
    bs = ev.cfg.batch_size
    for s in range(0, len(q), bs):
        users = q.users[s:s + bs]
        scores = U[torch.from_numpy(users)] @ I.T
        for b, u in enumerate(users):
            scores[b, list(seen[u])] = -float("inf")
        top = torch.topk(scores, k, dim=1).indices.numpy()
        for b in range(len(users)):
            rel = truth[s + b]
            recalls.append(len(rel.intersection(top[b].tolist())) / len(rel))
    return float(np.mean(recalls))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--synthetic", action="store_true", help="random data of Sports' shape")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the baseline always runs on cpu)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.synthetic:
        ds = synthetic_sports()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            ds = load_prepared(args.data or prepared_sports(tmp))
    gen = torch.Generator().manual_seed(0)
    U = torch.randn(ds.n_users, 64, generator=gen)
    I = torch.randn(ds.n_items, 64, generator=gen)
    Ud, Id = U.to(args.device), I.to(args.device)
    score_fn = lambda u, m: Ud[u] @ Id.T  # noqa: E731  (B, n_items)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    t = time.perf_counter()
    ev = Evaluator(ds, "test", EvalConfig(batch_size=args.batch_size, query="user"))
    t_build = time.perf_counter() - t
    ev(score_fn, device=args.device, ci=False)   # warm-up (allocator, BLAS threads, CUDA context)
    t = time.perf_counter()
    for s in range(0, ds.n_users, args.batch_size):   # the floor: the scoring matmuls alone
        score_fn(torch.arange(s, min(s + args.batch_size, ds.n_users), device=args.device), None)
    sync()
    t_floor = time.perf_counter() - t
    t = time.perf_counter()
    res = ev(score_fn, device=args.device, ci=False)
    t_mrs = time.perf_counter() - t
    t = time.perf_counter()
    ev.score(ev.rank(score_fn, device=args.device), ci=True)
    t_ci = time.perf_counter() - t - t_mrs
    t = time.perf_counter()
    r_base = baseline(ev, U, I)
    t_base = time.perf_counter() - t
    assert abs(r_base - res.metrics["all"]["recall@20"]) < 1e-9, (r_base, res.metrics["all"]["recall@20"])
    print(f"data: {ds.name}: {ds.n_users} users, {ds.n_items} items, {len(ev)} test queries, "
          f"threads={args.threads}, device={args.device}, batch={args.batch_size}")
    print(f"floor, scoring matmuls alone (U[b] @ I.T for every batch): {t_floor:.2f} s")
    print(f"build queries/masks/slices: {t_build:.2f} s (once per split)")
    print(f"mrs full ranking + metrics, 4 slices: {t_mrs:.2f} s "
          f"(rank {res.info['rank_seconds']:.2f} s, metrics {res.info['score_seconds']:.2f} s)")
    print(f"bootstrap CIs, 1000 replicates x 4 slices x {len(res.metrics['all'])} metrics: ~{t_ci:.2f} s")
    print(f"baseline (Python loops for masks and hits, recall@20 only): {t_base:.2f} s")
    print(f"speed-up: {t_base / t_mrs:.1f}x; same recall@20: {r_base:.5f}")


if __name__ == "__main__":
    main()
