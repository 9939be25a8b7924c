"""Per-step timing of every encoder (MF, LightGCN, FREEDOM) on synthetic data of Amazon Sports'
size. Prints seconds per epoch estimated
from ``--steps`` steps, and ratios against MF and uniform negatives measured in the same run.

    taskset -c 0,1 python experiments/benchmarks/bench_encoders.py --device cpu --steps 30
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrs.models import Batch, ModelConfig, build_model
from mrs.sampling import NegativeSampler

U, I, E, B = 35598, 18357, 237000, 2048  # Sports-sized: users, items, train edges, batch


def time_steps(encoder: str, strategy: str, u: np.ndarray, i: np.ndarray, device: str, steps: int,
               fused: bool = True) -> float:
    torch.manual_seed(0)
    m = build_model(ModelConfig(encoder=encoder, modes=False), n_users=U, n_items=I, mode_cardinalities=[],
                    train_users=u, train_items=i).to(device)
    s = NegativeSampler(u, i, I, 0, strategy=strategy)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=fused)
    ut, it = torch.as_tensor(u, device=device), torch.as_tensor(i, device=device)
    modes = torch.zeros(B, 0, dtype=torch.long, device=device)
    perm = torch.randperm(E, device=device)
    m.train()
    m.on_epoch_start(0)
    for k in range(3 + steps):  # 3 warm-up steps
        if k == 3:
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        idx = perm[k * B:(k + 1) * B]
        users, pos = ut[idx], it[idx]
        emb = m.encode()
        neg = s.sample(users, modes, m, emb)
        loss, _ = m.calculate_loss(Batch(users, pos, neg, modes), emb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps * -(-E // B)  # seconds per epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    pop = 1 / np.arange(1, I + 1) ** 0.8  # long-tailed item popularity
    u, i = rng.integers(0, U, E), rng.choice(I, E, p=pop / pop.sum())
    runs = [("mf", "uniform"), ("lightgcn", "uniform"), ("lightgcn", "dynamic"), ("freedom", "uniform")]
    res = {r: time_steps(*r, u, i, args.device, args.steps) for r in runs}
    print(f"device={args.device} threads={torch.get_num_threads()} batch={B} dim=64 layers=2")
    for (enc, neg), sec in res.items():
        print(f"{enc:9s} {neg:8s} {sec:6.2f} s/epoch  ({sec / res[('mf', 'uniform')]:.2f}x MF)")
    print(f"dynamic (M=16) / uniform, LightGCN: "
          f"{res[('lightgcn', 'dynamic')] / res[('lightgcn', 'uniform')]:.2f}x")
    plain = time_steps("lightgcn", "uniform", u, i, args.device, args.steps, fused=False)
    print(f"lightgcn  uniform  {plain:6.2f} s/epoch with torch's default (unfused) Adam "
          f"({plain / res[('lightgcn', 'uniform')]:.2f}x the fused Adam above)")


if __name__ == "__main__":
    main()
