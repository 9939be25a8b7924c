"""Offline replay of exploration (``explore = none | ucb | thompson``) on planted data where the
true preference tensor is known (``planted.npz``).

A small planted dataset (``mrs.synth.make_prepared``) -> one trained MF + CP model -> ``mrs
export``. Then T rounds; in each, B random users, each with a random context and month:

1. recommend: the served top-12 (``RecommendService.rank`` with the exploration setting);
2. simulated response: the user buys one item drawn from the true ``P(i | u, c, t)``
   (planted cluster probability x popularity within the cluster); a buy inside the list is a click;
3. online update: every shown item gets one more observation (its uncertainty shrinks), and a
   click moves the item factors by one BPR step on (clicked, each other shown item) with the user's
   folded query, step ``η / (1 + n_i)`` (user factors and mode factors stay frozen).

Regret of a list = Σ of ``P`` over the oracle's top 12 − Σ over the served list (expected clicks).
Tail items: ≤ 20 train interactions and a non-zero true popularity; discovered = clicked at least
once during the replay. Every variant replays the same users, contexts and purchases' random
streams per seed.

    python experiments/exploration/replay.py --out experiments/exploration
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

K = 12


def build(work: Path, seed: int) -> Path:
    """Planted data, one trained MF + CP run, exported; returns the model directory."""
    from mrs.serve.export import export_run
    from mrs.synth import make_prepared
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    model = work / "model"
    if (model / "manifest.json").is_file():
        return model
    data = make_prepared(work / "ds", n_users=600, n_items=800, n_interactions=15000, seed=seed,
                         modes=True, features_dim=0)
    cfg = load_train_config(None, [f"data.dir={data}", "model.encoder=mf", "model.dim=32",
                                   "train.epochs=40", "train.batch_size=1024", "train.lr=0.01",
                                   "train.patience=5", "train.device=cpu", "eval.bootstrap=0",
                                   "eval.ks=[20]", "wandb.enabled=false", f"train.seed={seed}"])
    shutil.rmtree(work / "run", ignore_errors=True)
    run_train(cfg, work / "run")
    export_run(work / "run", model)
    return model


def replay(model_dir: Path, planted_path: Path, explore: str, strength: float, rounds: int,
           batch: int, seed: int, eta: float) -> dict:
    from mrs.serve.service import RecommendService
    from mrs.synth import load_planted

    svc = RecommendService.open(model_dir, retrieval="exact")
    m = svc.model
    p, _ = load_planted(planted_path)
    item_share = p.item_popularity  # (I,) within-cluster share, 0 = cold
    train_counts = m.item_counts.copy()
    tail = (train_counts <= 20) & (item_share > 0)
    rng = np.random.default_rng(seed)          # users, contexts, purchases: the same for every variant
    gen = torch.Generator().manual_seed(seed)  # Thompson's samples
    n_users, n_ctx = len(m.user_ids), len(m.mode_labels["context"])
    clicked = np.zeros(len(item_share), bool)
    regret, tail_found, served_p, oracle_p = [], [], 0.0, 0.0
    for _ in range(rounds):
        users = rng.integers(0, n_users, batch)
        ctx, month = rng.integers(0, n_ctx, batch), rng.integers(0, 12, batch)
        P = p.cluster_probs(users, ctx, month)[:, p.item_cluster] * item_share  # (B, I) true P(i | u, c, t)
        bought = np.array([rng.choice(len(row), p=row / row.sum()) for row in P])
        oracle = -np.sort(-P, axis=1)[:, :K].sum(1)
        lists = np.empty((batch, K), np.int64)
        for b in range(batch):  # one request per user, as served
            labels = {"context": m.mode_labels["context"][ctx[b]], "time": m.mode_labels["time"][month[b]]}
            lists[b] = svc.rank(np.array([users[b]]), labels, K, explore=explore, explore_strength=strength,
                                generator=gen).items[0]
            q = m.query(np.array([users[b]]), labels)[0]  # (R,)
            shown = lists[b]
            if bought[b] in shown:  # click: BPR steps, clicked vs every other shown item
                clicked[bought[b]] = True
                pos = bought[b]
                for j in shown[shown != pos]:
                    d = float(q @ (m.item[pos] - m.item[j]))
                    g = 1.0 / (1.0 + np.exp(d))  # σ(-d)
                    m.item[pos] += eta / (1 + svc.counts[pos]) * g * q
                    m.item[j] -= eta / (1 + svc.counts[j]) * g * q
            svc.counts[shown] += 1  # one more observation of every shown item
        got = np.take_along_axis(P, lists, 1).sum(1)
        regret.append(float((oracle - got).sum()))
        served_p, oracle_p = served_p + float(got.sum()), oracle_p + float(oracle.sum())
        tail_found.append(float(clicked[tail].mean()))
    return {"explore": explore, "strength": strength, "seed": seed,
            "cum_regret": np.cumsum(regret).tolist(), "tail_discovered": tail_found,
            "n_tail": int(tail.sum()), "clicks_per_query": served_p / (rounds * batch),
            "oracle_clicks_per_query": oracle_p / (rounds * batch)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("experiments/exploration"))
    ap.add_argument("--work", type=Path, default=Path("runs/exploration"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--eta", type=float, default=0.05)
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = [("none", 0.0), ("ucb", 1.0), ("ucb", 3.0), ("thompson", 1.0), ("thompson", 3.0)]
    results = []
    for seed in args.seeds:
        model = build(args.work / f"seed{seed}", seed)
        for explore, strength in variants:
            r = replay(model, args.work / f"seed{seed}" / "ds" / "planted.npz", explore, strength,
                       args.rounds, args.batch, seed, args.eta)
            results.append(r)
            print(f"seed {seed} {explore:<8} β={strength:<4} cumulative regret {r['cum_regret'][-1]:8.3f}  "
                  f"tail discovered {r['tail_discovered'][-1]:.3f} of {r['n_tail']}  expected clicks/query "
                  f"{r['clicks_per_query']:.3f} (oracle {r['oracle_clicks_per_query']:.3f})", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    from mrs.io import write_json_atomic

    write_json_atomic(args.out / "results.json", results)
    print("\nmean over seeds (T = %d rounds x %d users):" % (args.rounds, args.batch))
    print("| explore | β | cumulative regret | vs greedy | tail discovered | vs greedy |")
    print("|---|---|---|---|---|---|")
    base = {s: next(r for r in results if r["seed"] == s and r["explore"] == "none") for s in args.seeds}
    for explore, strength in variants:
        rs = [r for r in results if r["explore"] == explore and r["strength"] == strength]
        reg = np.mean([r["cum_regret"][-1] for r in rs])
        tail = np.mean([r["tail_discovered"][-1] for r in rs])
        breg = np.mean([base[r["seed"]]["cum_regret"][-1] for r in rs])
        btail = np.mean([base[r["seed"]]["tail_discovered"][-1] for r in rs])
        print(f"| {explore} | {strength} | {reg:.2f} | {reg / breg:.3f}x | {tail:.3f} | {tail / max(btail, 1e-9):.2f}x |")
    plot(results, variants, args.out / "exploration.png")
    print(f"\nplot: {args.out / 'exploration.png'}")
    return 0


def plot(results: list[dict], variants, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for explore, strength in variants:
        rs = [r for r in results if r["explore"] == explore and r["strength"] == strength]
        label = "greedy" if explore == "none" else f"{explore} β={strength}"
        ax[0].plot(np.mean([r["cum_regret"] for r in rs], 0), label=label)
        ax[1].plot(np.mean([r["tail_discovered"] for r in rs], 0), label=label)
    ax[0].set(xlabel="round", ylabel="cumulative regret (expected clicks lost)", title="regret")
    ax[1].set(xlabel="round", ylabel="share of tail items clicked", title="tail items discovered")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
