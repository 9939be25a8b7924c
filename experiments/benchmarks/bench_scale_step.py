"""Benchmark (issue 12): peak memory of one LightGCN+CP training step and of evaluation on CPU at
Amazon Clothing 5-core's size (2.5M users, 715K items, 23M interactions), against MF+CP.

    python experiments/benchmarks/bench_scale_step.py --work runs/scale5 \
        [--users 2500000 --items 715000 --interactions 23000000] [--batch 65536] [--eval-queries 4096]

1. Generates the prepared dataset with :func:`mrs.synth.scale.make_scale_dataset` (5-core-like:
   every user >= 5 interactions, power-law users and items, leave-last-out split, context and time
   modes) under ``--work/data``, in a child process (its wall and peak RSS are printed), and reuses
   it while ``dataset.json["params"]`` matches.
2. For each encoder (``lightgcn``, ``mf``; CP over the modes, d = 64, 2 layers, BPR, uniform
   negatives) runs three FRESH child processes, so each peak RSS (``os.wait4`` rusage) is that
   phase's own: ``build`` (``Trainer.build``: data loading, train triples, negative sampler,
   graph, model), ``step`` (build + ONE training step on a global batch of ``--batch`` triples,
   exactly as ``Trainer.train_epoch`` runs it) and ``eval`` (build + ``Trainer.evaluate("valid")``
   on ``--eval-queries`` random valid queries under the default ``eval.max_memory_mb``, full
   ranking over all items; the evaluator's queries and masks are built for the whole valid split,
   as in training, then cut to the sample). Inside each child, VmHWM is reset after the build
   (``/proc/self/clear_refs``), so "phase peak" is the peak while the step / evaluation ran.
3. Prints the table and the analytic sizes (embedding tables, gradients, Adam states, adjacency,
   train triples) that a reader can hold against the measured peaks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

GB = 1024 ** 3


def _status(key: str) -> int:
    """A ``/proc/self/status`` field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key))


def child(phase: str, encoder: str, data: str, batch: int, n_queries: int, threads: int) -> dict:
    """One measurement in this (fresh) process; returns its figures (printed as JSON)."""
    import numpy as np
    import torch

    from mrs.eval import Evaluator
    from mrs.eval.queries import Queries
    from mrs.eval.ranking import Csr
    from mrs.train.config import load_train_config
    from mrs.train.data import batch_indices
    from mrs.train.trainer import Trainer, configure_process, seed_everything

    cfg = load_train_config(None, [f"data.dir={data}", f"model.encoder={encoder}", "model.modes=true",
                                   "model.dim=64", "model.layers=2", f"train.batch_size={batch}",
                                   "train.device=cpu", "wandb.enabled=false", "eval.bootstrap=0"])
    configure_process(threads)           # what run_train does first (threads, glibc thresholds)
    rss_start = _status("VmRSS")         # the interpreter and its imports (torch, pandas, ...)
    t0 = time.perf_counter()
    tr = Trainer.build(cfg, seed_everything(cfg.train.seed))
    out = {"build_s": time.perf_counter() - t0, "rss_start": rss_start, "rss_built": _status("VmRSS"), "hwm_build": _status("VmHWM"),
           "n_train": len(tr.triples), "n_params": sum(p.numel() for p in tr.model.parameters()),
           "n_buffers": sum(b.numel() * b.element_size() for b in tr.model.buffers())}
    with open("/proc/self/clear_refs", "w") as fh:   # VmHWM := VmRSS: the phase's own peak from here
        fh.write("5")
    t0 = time.perf_counter()
    if phase == "step":   # Trainer.train_epoch's first step
        tr.model.train()
        tr.model.on_epoch_start(0, tr.generator)
        parts, _ = tr.train_step(next(batch_indices(len(tr.triples), batch, tr.generator)))
        out.update(loss=parts["loss"])
    elif phase == "eval":
        ev = Evaluator(tr.ds, "valid", cfg.eval)    # queries and masks of the whole valid split
        out.update(evaluator_s=time.perf_counter() - t0, n_queries_split=len(ev.queries))
        q = ev.queries
        rows = np.sort(np.random.default_rng(0).choice(len(q), min(n_queries, len(q)), replace=False))
        pos, cols = q.truth.gather(rows)
        ev.queries = Queries(users=q.users[rows], modes=q.modes[rows], truth=Csr.from_pairs(pos, cols, len(rows)),
                             seen=q.seen, all_seen=q.all_seen, n_items=q.n_items, kind=q.kind)
        ev.cold_user = ev.cold_user[rows]
        tr._evaluators["valid"] = ev                # Trainer.evaluate ranks with this one
        plan = ev.plan(tr.device)
        res = tr.evaluate("valid", ci=False)
        out.update(rank_s=res.info.get("rank_seconds"), B=plan.query_batch, C=plan.item_chunk,
                   budget_mb=plan.budget_mb, recall20=res.metrics["all"].get("recall@20"),
                   n_queries=len(rows))
    out.update(phase_s=time.perf_counter() - t0, hwm_phase=_status("VmHWM"), threads=torch.get_num_threads())
    return out


def run_child(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall s, peak RSS in GB, exit code, stdout) of one child process (``os.wait4`` rusage)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as err:   # files: no pipe can block
        proc = subprocess.Popen(cmd, stdout=so, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        so.seek(0)
        text = so.read().decode(errors="replace")
        if code != 0:
            err.seek(0)
            print(f"command failed ({code}): {' '.join(cmd)}\n{err.read().decode(errors='replace')[-2000:]}",
                  file=sys.stderr)
    return wall, usage.ru_maxrss / 1024 ** 2, code, text       # ru_maxrss: KiB


def ensure_data(work: Path, users: int, items: int, inter: int, seed: int) -> Path:
    data = work / "data"
    want = dict(n_users=users, n_items=items, n_interactions=inter, seed=seed)
    meta = data / "dataset.json"
    if meta.is_file() and all(json.loads(meta.read_text())["params"].get(k) == v for k, v in want.items()):
        print(f"reusing {data}", flush=True)
        return data
    code = (f"from mrs.synth.scale import make_scale_dataset; make_scale_dataset({str(data)!r}, {users}, {items}, "
            f"{inter}, seed={seed})")
    wall, rss, rc, _ = run_child([sys.executable, "-c", code])
    if rc:
        raise SystemExit(rc)
    print(f"generated {data}: {wall:.1f} s wall, {rss:.2f} GB peak RSS", flush=True)
    return data


def analytic(meta: dict, n_train: int, dim: int = 64) -> list[tuple[str, float]]:
    """Sizes in bytes of what a LightGCN+CP step holds for sure (MF+CP: all but the adjacency).
    Transients are not listed: each propagation layer's output and running sum are (U+I)·d
    tensors (the tables' size; ``SparseMM`` saves none for backward), and Adam's update makes
    parameter-sized temporaries; the measured phase peak holds them."""
    U, I = meta["n_users"], meta["n_items"]
    table = (U + I) * dim * 4
    modes = sum(m["cardinality"] for m in meta["modes"].values()) * dim * 4
    csr = 2 * (n_train * (8 + 4)) + (U + 1 + I + 1) * 8     # R̂ and R̂ᵀ: int64 col + float32 val, int64 crow
    return [("embedding tables (U+I)·d·4 B", table + modes), ("their gradients (dense)", table + modes),
            ("Adam states (2 per parameter)", 2 * (table + modes)),
            (f"adjacency R̂ + R̂ᵀ (nnz {n_train:,} each; lightgcn only)", csr),
            ("interactions frame (user, item, ts, 2 modes, split: 25 B/row)", meta["n_interactions"] * 25),
            ("train triples (user, item, 2 modes as int64)", n_train * 32),
            ("negative sampler (keys, shifted int64; deg, start per user)", n_train * 16 + U * 16)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(REPO / "runs" / "scale5"))
    ap.add_argument("--users", type=int, default=2_500_000)
    ap.add_argument("--items", type=int, default=715_000)
    ap.add_argument("--interactions", type=int, default=23_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=65_536)
    ap.add_argument("--eval-queries", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--encoders", nargs="*", default=["lightgcn", "mf"])
    ap.add_argument("--phases", nargs="*", default=["build", "step", "eval"], help="none: analytic sizes only")
    ap.add_argument("--child", nargs=2, metavar=("PHASE", "ENCODER"), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child, a.data, a.batch, a.eval_queries, a.threads)), flush=True)
        return 0
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    data = ensure_data(work, a.users, a.items, a.interactions, a.seed)
    meta = json.loads((data / "dataset.json").read_text())
    print(f"dataset: {meta['n_users']:,} users, {meta['n_items']:,} items, {meta['n_interactions']:,} "
          f"interactions, splits {meta['splits']}; batch {a.batch:,}; eval queries {a.eval_queries:,}; "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    hdr = (f"{'encoder':<9} {'phase':<6} {'phase s':>8} {'child s':>8} {'peak RSS GB':>11} "
           f"{'after build GB':>14} {'phase peak GB':>13}  notes")
    rows = [hdr]
    print(hdr, flush=True)
    n_train = meta["splits"]["train"]
    for enc in a.encoders:
        for phase in a.phases:
            cmd = [sys.executable, __file__, "--child", phase, enc, "--data", str(data), "--batch", str(a.batch),
                   "--eval-queries", str(a.eval_queries), "--threads", str(a.threads)]
            wall, rss, rc, text = run_child(cmd)
            if rc:
                rows.append(f"{enc:<9} {phase:<6} failed (exit {rc})")
                print(rows[-1], flush=True)
                continue
            r = json.loads(text.strip().splitlines()[-1])
            secs = r["build_s"] if phase == "build" else r["phase_s"]
            note = f"imports {r['rss_start'] / GB:.2f} GB, build {r['build_s']:.1f} s, params {r['n_params']:,}, buffers {r['n_buffers'] / GB:.2f} GB"
            if phase == "step":
                note = f"loss {r['loss']:.4f}; " + note
            if phase == "eval":
                note = (f"{r['n_queries']:,} of {r['n_queries_split']:,} valid queries, B={r['B']} C={r['C']:,} "
                        f"(budget {r['budget_mb']:.0f} MiB), evaluator {r['evaluator_s']:.1f} s, "
                        f"rank {r['rank_s']:.1f} s, recall@20 {r['recall20']:.4f}; " + note)
            phase_peak = "" if phase == "build" else f"{r['hwm_phase'] / GB:.2f}"
            rows.append(f"{enc:<9} {phase:<6} {secs:>8.1f} {wall:>8.1f} {rss:>11.2f} "
                        f"{r['rss_built'] / GB:>14.2f} {phase_peak:>13}  {note}")
            print(rows[-1], flush=True)
    print(f"\nanalytic sizes (d=64; train rows {n_train:,}):")
    for name, b in analytic(meta, n_train):
        print(f"  {name:<66} {b / GB:6.2f} GB")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
