"""Issue 12: what glibc's allocator costs a full-size training step, and ``train.malloc``'s fix.

At full H&M size the propagation temporaries are (U+I) × d floats = 1.03M × 64 × 4 B = 264 MB,
far above the 32 MiB that ``M_MMAP_THRESHOLD`` can be raised to, so glibc ``mmap``s every one
of them and ``munmap``s it on free: each step page-faults ~GBs of fresh zero pages (the
whole-job ``/usr/bin/time`` of a 12-week LightGCN run showed 562 s system time beside 649 s
user time and 182M minor page faults). ``train.malloc: heap`` sets ``M_MMAP_MAX = 0``: large
blocks then come from the heap, and with the 1 GiB trim threshold freed ones stay for reuse.

Each mode runs in its own child process (the allocator setting is process-wide and cannot be
undone): build the trainer, one warm-up step, then ``--steps`` timed steps of the normal
training loop (encode, sample, loss, backward, Adam). Printed per mode: wall and CPU seconds per
step (user, system), minor page faults per step, peak RSS; then the ratios heap / mmap.

    python experiments/benchmarks/bench_malloc.py --data /tmp/w12/hm/w12 --batch 65536 --steps 6
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    import torch

    from mrs.train.config import load_train_config
    from mrs.train.data import batch_indices
    from mrs.train.trainer import Trainer, configure_process, seed_everything

    cfg = load_train_config(None, [f"data.dir={a.data}", f"model.encoder={a.encoder}", "model.dim=64",
                                   f"train.batch_size={a.batch}", f"train.malloc={a.mode}",
                                   f"train.num_threads={a.threads}", "wandb.enabled=false"])
    configure_process(cfg.train.num_threads, cfg.train.malloc)
    tr = Trainer.build(cfg, seed_everything(0))
    t = tr.triples
    tr.model.train()
    tr.model.on_epoch_start(0, tr.generator)
    batches = batch_indices(len(t), a.batch, tr.generator)

    def step() -> None:
        tr.train_step(next(batches))   # the training loop's own step

    step()  # warm-up: first-touch of parameters and optimizer state
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(a.steps):
        step()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    n = a.steps
    print(json.dumps({"wall": wall / n, "user": (r1.ru_utime - r0.ru_utime) / n,
                      "sys": (r1.ru_stime - r0.ru_stime) / n, "faults": (r1.ru_minflt - r0.ru_minflt) / n,
                      "peak_gb": r1.ru_maxrss * 1024 / 1e9, "steps_per_epoch": -(-len(t) // a.batch)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="prepared dataset (e.g. the 12-week full-size H&M window)")
    ap.add_argument("--encoder", default="lightgcn")
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="mmap,heap", help="train.malloc values, each in its own child")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        a.mode = a.child
        return child(a)
    with open("/proc/loadavg") as f:
        print(f"{a.encoder}+cp, batch {a.batch}, {a.steps} timed steps after 1 warm-up, {a.threads} threads; "
              f"load average at start {f.read().split()[0]}")
    print(f"{'train.malloc':>12} {'wall s/step':>11} {'user s':>7} {'sys s':>7} {'faults/step':>12} "
          f"{'peak GB':>8} {'epoch min':>9}")
    res = {}
    for mode in a.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--data", a.data, "--encoder", a.encoder,
                              "--batch", str(a.batch), "--steps", str(a.steps), "--threads", str(a.threads)],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{mode:>12} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        r = res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode:>12} {r['wall']:11.2f} {r['user']:7.2f} {r['sys']:7.2f} {r['faults']:12,.0f} "
              f"{r['peak_gb']:8.2f} {r['wall'] * r['steps_per_epoch'] / 60:9.1f}")
    if {"mmap", "heap"} <= res.keys():
        m, h = res["mmap"], res["heap"]
        print(f"heap / mmap: wall {h['wall'] / m['wall']:.2f}x, cpu {(h['user'] + h['sys']) / (m['user'] + m['sys']):.2f}x, "
              f"system {h['sys'] / max(m['sys'], 1e-9):.2f}x, faults {h['faults'] / max(m['faults'], 1):.3f}x, "
              f"peak RSS {h['peak_gb'] / m['peak_gb']:.2f}x")


if __name__ == "__main__":
    main()
