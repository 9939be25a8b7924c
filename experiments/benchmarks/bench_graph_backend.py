"""Issue 8, part 3: ``model.graph_backend`` csr (our torch.sparse CSR blocks) vs pyg (PyG's LGConv
on an EdgeIndex, gcn_norm) on Amazon 2014 Sports, both measured in the same run.

Prints, for LightGCN (64-d, 2 layers, batch 2048, uniform negatives, no modes; the settings of
``bench_train_speed.py``):
  * the largest difference between the two backends' embeddings on the Sports graph,
  * one propagation (forward + backward of the 2-layer stack over all 53,955 nodes) with csr, pyg,
    and PyG's default LGConv on a plain edge list (gather + scatter per edge; what the pyg backend
    does *not* use), each the median of interleaved repeats, and the ratios to csr,
  * one ``R̂ @ x`` with the kernel each path calls (``a @ x``; ``torch.sparse.mm(a, x, "sum")``),
  * seconds per training epoch with each backend (epochs interleaved csr, pyg, csr, pyg, ... after
    one warm-up epoch each, so load on the shared machine hits both alike) and the ratio pyg / csr.
``--encoders lightgcn freedom`` adds the FREEDOM epoch (pruned graph; no kNN graph without features).

    python -m mrs prepare amazon2014 --sequences /work/shared/data/amazon2014/Sports_and_Outdoors.txt --out /tmp/sports
    python experiments/benchmarks/bench_graph_backend.py --data /tmp/sports --threads 2 --epochs 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, configure_process

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "sports_lightgcn.yaml"
BACKENDS = ("csr", "pyg")


def build(data: str, encoder: str, backend: str, threads: int) -> Trainer:
    cfg = load_train_config(CONFIG, [f"data.dir={data}", f"model.encoder={encoder}", "model.dim=64",
                                     "model.layers=2", "model.modes=false", f"model.graph_backend={backend}",
                                     "train.batch_size=2048", "train.negatives=uniform", "train.device=cpu",
                                     f"train.num_threads={threads}", "eval.bootstrap=0"])
    return Trainer.build(cfg)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def propagation(trainers: dict[str, Trainer], repeats: int) -> None:
    """Forward + backward of the encoder alone on fixed ego rows, interleaved across variants."""
    from torch_geometric.nn import LGConv

    enc = {b: trainers[b].model.encoder for b in BACKENDS}
    n_users = trainers["csr"].ds.n_users
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n_users + trainers["csr"].ds.n_items, 64, generator=g, requires_grad=True)
    w = torch.randn(x0.shape, generator=g)
    adj = enc["pyg"].adj  # the same graph as a plain (2, 2E) edge list for PyG's default LGConv
    edge_list, edge_weight, conv = adj.edge_index.as_tensor(), adj.edge_weight, LGConv(normalize=False)

    def stock(x):
        s = h = x
        for _ in range(2):
            h = conv(h, edge_list, edge_weight)
            s = s + h
        return s / 3

    variants = {
        "csr": lambda x: torch.cat(enc["csr"](x[:n_users], x[n_users:])),
        "pyg": lambda x: torch.cat(enc["pyg"](x[:n_users], x[n_users:])),
        "pyg LGConv gather/scatter": stock,
    }
    out = {k: f(x0) for k, f in variants.items()}
    diff = max((out[k] - out["csr"]).abs().max().item() for k in out)
    print(f"embeddings on the Sports graph: max |pyg - csr| = {diff:.2e} over {x0.shape[0]} nodes x 64", flush=True)

    def step(f):
        y = f(x0)
        torch.autograd.grad((y * w).sum(), x0)

    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats + 1):  # the first round is a warm-up
        for k, f in variants.items():
            times[k].append(timed(lambda: step(f)))
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    for k, t in med.items():
        print(f"propagation fwd+bwd, 2 layers, {k:26s}: {t * 1000:7.1f} ms (median of {repeats}; "
              f"{t / med['csr']:.2f}x csr)", flush=True)

    # the kernels underneath: csr runs ``a @ x``; PyG's fused path ``torch.sparse.mm(a, x, "sum")``
    r_ui = enc["csr"].r_ui.csr()
    x = torch.randn(r_ui.shape[1], 64, generator=g)
    kernels = {"a @ x": lambda: r_ui @ x, 'torch.sparse.mm(a, x, "sum")': lambda: torch.sparse.mm(r_ui, x, "sum")}
    kt: dict[str, list[float]] = {k: [] for k in kernels}
    for _ in range(repeats + 1):
        for k, f in kernels.items():
            kt[k].append(timed(f))
    km = {k: statistics.median(v[1:]) for k, v in kt.items()}
    t_mm, t_reduce = km["a @ x"], km['torch.sparse.mm(a, x, "sum")']
    print("one R̂ @ x (35598 x 18357 CSR, 64 columns): " + ", ".join(f"{k} {t * 1000:.1f} ms" for k, t in km.items())
          + f" (a @ x takes {t_mm / t_reduce:.2f}x as long)", flush=True)


def epochs(data: str, encoder: str, threads: int, n: int) -> None:
    trainers = {b: build(data, encoder, b, threads) for b in BACKENDS}
    if encoder == "lightgcn":
        propagation(trainers, repeats=7)
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for e in range(n + 1):  # epoch 0 of each is the warm-up
        for b in BACKENDS:
            times[b].append(timed(lambda: trainers[b].train_epoch(e)))
    mean = {b: statistics.mean(times[b][1:]) for b in BACKENDS}
    for b in BACKENDS:
        print(f"{encoder} epoch, graph_backend={b}: {mean[b]:.2f} s ({len(trainers[b].triples)} triples, "
              f"{threads} threads; epochs {[round(t, 2) for t in times[b][1:]]})", flush=True)
    print(f"{encoder} epoch time pyg / csr: {mean['pyg'] / mean['csr']:.2f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/sports", help="prepared Amazon 2014 Sports")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per backend (after one warm-up)")
    ap.add_argument("--encoders", nargs="+", default=["lightgcn"], choices=["lightgcn", "freedom"])
    a = ap.parse_args(argv)
    configure_process(a.threads)  # as `mrs train` does: torch threads and glibc's allocator thresholds
    import torch_geometric
    import torch_geometric.typing as pyg_typing

    print(f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, "
          f"torch-scatter {'yes' if pyg_typing.WITH_TORCH_SCATTER else 'no'}; cpus={os.cpu_count()} "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for encoder in a.encoders:
        epochs(a.data, encoder, a.threads, a.epochs)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
