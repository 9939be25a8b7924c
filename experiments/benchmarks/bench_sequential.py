"""Issue 9, point 5: SASRec training and full-ranking evaluation speed on Amazon 2014 Beauty
(L=50, d=64, 2 blocks, 2 heads, batch 256, full-softmax cross-entropy), against a baseline
measured in the same run.

Baselines, in order of preference:
1. RecBole 1.2.1's SASRec (``loss_type: CE``) in an isolated venv (``--recbole-venv``; not a
   dependency of mrs), run by ``recbole_sasrec_worker.py``: its model and dataloader, timed batches
   scaled to its epoch (RecBole trains on every prefix: one row per train interaction).
2. A plain PyTorch SASRec loop written here (same architecture through nn.TransformerEncoder,
   every batch padded to L, no length bucketing): what a straightforward implementation costs.

    python experiments/benchmarks/bench_sequential.py --data runs/data/Beauty [--batches 20]

``--parity-epochs E`` measures time to equal quality instead: RecBole trains E whole epochs and
its valid NDCG@10 (RecBole's own full-sort evaluator) is the bar; mrs trains whole epochs at the
same lr until its valid NDCG@10 (full ranking, train items masked) reaches the bar; the ratio of
training seconds (validation excluded) is printed.

    python experiments/benchmarks/bench_sequential.py --data runs/data/Beauty --parity-epochs 1 --lr 0.001

``--batches N`` times the first N training batches of each implementation (the same N) and
scales to a full epoch; 0 runs whole epochs. Prints per-batch / per-epoch seconds, the ratio
mrs / baseline, full-ranking eval seconds over all valid users, and valid NDCG@10 after the
timed training (comparable only with equal training, i.e. --batches 0).
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def mrs_trainer(data: str, threads: int, lr: float | None = None):
    from mrs.train.config import load_train_config
    from mrs.train.trainer import Trainer, seed_everything

    sets = [f"data.dir={data}", "wandb.enabled=false", f"train.num_threads={threads}"]
    cfg = load_train_config(REPO / "configs/experiments/beauty_sasrec.yaml", sets + ([f"train.lr={lr}"] if lr else []))
    return Trainer.build(cfg, seed_everything(0))


def mrs_epoch(tr, n_batches: int = 0) -> tuple[float, int, int]:
    """One pass over mrs's length-bucketed batches (the first n_batches if > 0): (seconds, done, total)."""
    from mrs.train.sequences import bucketed_batches, train_step_seq

    s, pad = tr.seq.train, tr.ds.n_items
    batches = list(bucketed_batches(s, 256, tr.generator, pad))
    total = len(batches)
    batches = batches[:n_batches] if n_batches else batches
    tr.model.train()
    t0 = time.perf_counter()
    for idx in batches:
        train_step_seq(tr, idx)  # the training loop's own step
    return time.perf_counter() - t0, len(batches), total


def mrs_run(data: str, n_batches: int, threads: int) -> dict:
    tr = mrs_trainer(data, threads)
    train_s, done, total = mrs_epoch(tr, n_batches)
    t0 = time.perf_counter()
    res = tr.evaluate("valid", ci=False)
    return {"per_batch": train_s / done, "epoch": train_s / done * total,
            "batches": total, "eval": time.perf_counter() - t0, "ndcg@10": res.metrics["all"]["ndcg@10"]}


def mrs_to_quality(data: str, target: float, max_epochs: int, threads: int, lr: float) -> dict:
    """Train whole epochs at Adam lr until valid NDCG@10 (full ranking, train items masked)
    reaches target; training seconds exclude the validations."""
    tr = mrs_trainer(data, threads, lr)
    train_s, curve = 0.0, []
    for epoch in range(1, max_epochs + 1):
        train_s += mrs_epoch(tr)[0]
        curve.append(tr.evaluate("valid", ci=False).metrics["all"]["ndcg@10"])
        if curve[-1] >= target:
            break
    return {"train_s": train_s, "epochs": epoch, "curve": curve, "reached": curve[-1] >= target}


class PlainSASRec(nn.Module):
    """The reference: item + position embeddings, LayerNorm, dropout, 2 post-norm blocks."""

    def __init__(self, n_items: int, dim: int = 64, L: int = 50, blocks: int = 2, heads: int = 2, p: float = 0.5):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos = nn.Embedding(L, dim)
        self.norm, self.drop = nn.LayerNorm(dim), nn.Dropout(p)
        layer = nn.TransformerEncoderLayer(dim, heads, dim, p, activation="gelu", batch_first=True)
        self.enc = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.L = L

    def forward(self, seq):  # (B, L) ids + 1, 0 = pad -> (B, L, d)
        x = self.drop(self.norm(self.item(seq) + self.pos.weight))
        causal = torch.ones(self.L, self.L, dtype=torch.bool).triu(1)
        return self.enc(x, mask=causal)


def plain_run(data: str, n_batches: int, threads: int) -> dict:
    from mrs.data.prepared import load_prepared
    from mrs.train.sequences import time_order, train_sequences

    torch.set_num_threads(threads)
    ds = load_prepared(data)
    s = train_sequences(ds, 50, time_order(ds))
    inp = torch.where(s.inputs == ds.n_items, 0, s.inputs + 1)
    m = PlainSASRec(ds.n_items)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    perm = torch.randperm(len(s), generator=torch.Generator().manual_seed(0))
    batches = list(perm.split(256))
    total = len(batches)
    batches = batches[:n_batches] if n_batches else batches
    t0 = time.perf_counter()
    for idx in batches:
        h = m(inp[idx])                                             # (B, L, d)
        tgt = s.targets[idx]
        ok = tgt >= 0
        logits = h[ok] @ m.item.weight[1:].T
        loss = F.cross_entropy(logits, tgt[ok])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    return {"per_batch": train_s / len(batches), "epoch": train_s / len(batches) * total, "batches": total}


RECBOLE_PKGS = ["recbole==1.2.1", "colorlog==4.7.2", "colorama==0.4.4", "thop", "texttable", "tabulate"]


def install_recbole(venv: Path) -> None:
    """An isolated venv with RecBole 1.2.1 and its small dependencies (``--no-deps``: its pinned
    torch/numpy would pull gigabytes); torch, numpy, scipy, pandas come from *this* interpreter's
    site-packages through a ``.pth`` file, so both sides run the very same torch build."""
    import site

    if not (venv / "bin" / "python").is_file():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", *RECBOLE_PKGS], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "tensorboard", "plotly"], check=True)  # imported by recbole.utils
    sp = next(iter(venv.glob("lib/python*/site-packages")))
    (sp / "zz_mrs_torch.pth").write_text("\n".join(site.getsitepackages()) + "\n")


def recbole_run(venv: Path, data: str, n_batches: int, threads: int, epochs: int = 0,
                lr: float = 0.001) -> dict | str:
    """RecBole's SASRec in its own venv; returns timings, or the reason it could not run."""
    import json
    import tempfile

    import numpy as np

    from mrs.data.prepared import load_prepared

    py = venv / "bin" / "python"
    if not py.is_file():
        return f"no RecBole venv at {venv} (python -m venv {venv} && {venv}/bin/pip install recbole==1.2.1)"
    work = Path(tempfile.mkdtemp(prefix="bench-recbole-"))
    ds = load_prepared(data)
    inter = ds.interactions  # row order = time order (Amazon 2014 txt); position as timestamp
    pos = inter.groupby("user").cumcount().to_numpy()
    (work / "beauty").mkdir()
    with open(work / "beauty" / "beauty.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        np.savetxt(f, np.stack([inter["user"].to_numpy(), inter["item"].to_numpy(), pos], 1), fmt="%d", delimiter="\t")
    run = subprocess.run([str(py), str(Path(__file__).resolve().with_name("recbole_sasrec_worker.py")), str(work),
                          str(n_batches), str(threads), str(epochs), str(lr)],
                         capture_output=True, text=True, cwd=work)  # RecBole writes log_tensorboard/ into cwd
    if run.returncode:
        return "RecBole run failed: " + (run.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="prepared Beauty, leave-last-out")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recbole-venv", default="/tmp/recbole-venv")
    ap.add_argument("--install-recbole", action="store_true", help="create the RecBole venv first")
    ap.add_argument("--parity-epochs", type=int, default=0,
                    help="quality mode: RecBole trains this many epochs, then mrs trains until it reaches "
                         "RecBole's valid NDCG@10; prints both training times")
    ap.add_argument("--max-epochs", type=int, default=10, help="quality mode: mrs's epoch cap")
    ap.add_argument("--lr", type=float, default=0.001, help="quality mode: Adam lr on both sides")
    a = ap.parse_args()
    if a.install_recbole:
        install_recbole(Path(a.recbole_venv))
    if a.parity_epochs:
        return quality(a)
    rb = recbole_run(Path(a.recbole_venv), a.data, a.batches, a.threads)
    ours = mrs_run(a.data, a.batches, a.threads)
    ref = plain_run(a.data, a.batches, a.threads)
    if isinstance(rb, str):
        print(f"RecBole SASRec: not measured: {rb}")
    else:
        print(f"RecBole SASRec: {rb['per_batch']:.3f} s/batch, epoch ~{rb['epoch']:.1f} s ({rb['batches']} batches "
              f"of 256 prefixes)")
    print(f"mrs sasrec:   {ours['per_batch']:.3f} s/batch, epoch ~{ours['epoch']:.1f} s ({ours['batches']} batches); "
          f"full-ranking eval of all valid users {ours['eval']:.1f} s; valid NDCG@10 {ours['ndcg@10']:.4f}")
    print(f"plain loop:   {ref['per_batch']:.3f} s/batch, epoch ~{ref['epoch']:.1f} s ({ref['batches']} batches)")
    print(f"ratio mrs / plain epoch time: {ours['epoch'] / ref['epoch']:.2f}")
    if not isinstance(rb, str):
        print(f"ratio mrs / RecBole epoch time: {ours['epoch'] / rb['epoch']:.2f}")


def quality(a: argparse.Namespace) -> None:
    """Time to equal quality: RecBole's valid NDCG@10 after --parity-epochs epochs is the bar."""
    rb = recbole_run(Path(a.recbole_venv), a.data, 0, a.threads, a.parity_epochs, a.lr)
    if isinstance(rb, str):
        print(f"RecBole SASRec: not measured: {rb}")
        return
    print(f"RecBole SASRec: {rb['epochs']} epochs ({rb['batches']} batches each) in {rb['train_s']:.1f} s "
          f"({rb['epoch']:.1f} s/epoch); valid NDCG@10 {rb['ndcg@10']:.4f} (eval {rb['eval']:.1f} s)")
    ours = mrs_to_quality(a.data, rb["ndcg@10"], a.max_epochs, a.threads, a.lr)
    print(f"mrs sasrec:     {ours['epochs']} epochs in {ours['train_s']:.1f} s; valid NDCG@10 by epoch "
          + ", ".join(f"{x:.4f}" for x in ours["curve"])
          + ("" if ours["reached"] else f" (did not reach {rb['ndcg@10']:.4f} within {a.max_epochs} epochs)"))
    print(f"ratio mrs / RecBole training time to valid NDCG@10 >= {rb['ndcg@10']:.4f}: "
          f"{ours['train_s'] / rb['train_s']:.2f}" + ("" if ours["reached"] else " (bar not reached)"))


if __name__ == "__main__":
    main()
