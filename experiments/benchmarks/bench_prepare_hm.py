"""Benchmark: ``mrs prepare hm`` on a full-size H&M-format dataset vs a plain ``pandas.read_csv``.

    python experiments/benchmarks/bench_prepare_hm.py              # full size (31.8M rows)
    python experiments/benchmarks/bench_prepare_hm.py --scale 0.05 # quick look

Generates the raw files once with ``mrs synth --format hm --no-images`` (kept under ``--raw`` and
reused while their sizes match), then runs, each in its own child process so peak RSS is that
child's own (``os.wait4`` rusage): (1) ``mrs prepare hm`` end to end (read, ids, modes, split,
items, parquet writes), (2) the baseline ``pandas.read_csv(transactions_train.csv)`` with default
options (reading only: no ids, no split, nothing written). Prints both and the ratios. Targets
(issue 2): prepare <= 120 s wall and <= 6 GB peak RSS on the 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FULL = {"interactions": 31_788_324, "users": 1_371_980, "items": 105_542}  # Kaggle's full sizes


def run_child(cmd: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s (user+sys), peak RSS in GB, exit code) of one child process.

    CPU seconds are reported beside wall time because the machine is shared: under load the wall
    time of the same work grows, its CPU time much less.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:          # a file, not a pipe: a chatty child cannot block
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            print(f"command failed ({code}): {' '.join(cmd)}\n{err.read().decode(errors='replace')[-2000:]}",
                  file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024 ** 2, code  # maxrss: KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", default=str(REPO / "out" / "bench" / "hm_raw"), help="generated raw files")
    ap.add_argument("--out", default=str(REPO / "out" / "bench" / "hm_prepared"))
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    sizes = {k: max(10, int(v * args.scale)) for k, v in FULL.items()}
    raw = Path(args.raw)
    mrs = [sys.executable, "-m", "mrs"]
    planted = raw / "planted.json"
    have = json.loads(planted.read_text()) if planted.is_file() else {}
    model = have.get("job", {}).get("model", {})
    if (model.get("n_interactions"), model.get("n_users"), model.get("n_items"), model.get("seed")) != \
            (sizes["interactions"], sizes["users"], sizes["items"], args.seed):
        shutil.rmtree(raw, ignore_errors=True)
        print(f"generating {sizes} with mrs synth --no-images ...", flush=True)
        wall, _, rss, code = run_child(mrs + ["synth", "--format", "hm", "--out", str(raw), "--no-images",
                                           "--users", str(sizes["users"]), "--items", str(sizes["items"]),
                                           "--interactions", str(sizes["interactions"]), "--seed", str(args.seed)])
        print(f"  synth: {wall:.1f} s wall, {rss:.2f} GB peak RSS", flush=True)
        if code:
            return code
    tx = raw / "transactions_train.csv"
    print(f"input: {tx} ({tx.stat().st_size / 1e9:.2f} GB), cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    wall_p, cpu_p, rss_p, code = run_child(mrs + ["prepare", "hm", "--raw", str(raw), "--out", args.out])
    if code:
        return code
    meta = json.loads((Path(args.out) / "dataset.json").read_text())
    print(f"mrs prepare hm : {wall_p:7.1f} s wall, {cpu_p:7.1f} s CPU, {rss_p:5.2f} GB peak RSS  "
          f"({meta['n_interactions']:,} interactions, {meta['n_users']:,} users, {meta['n_items']:,} items)",
          flush=True)
    if not args.skip_pandas:
        wall_b, cpu_b, rss_b, code = run_child([sys.executable, "-c",
                                         f"import pandas as pd; df = pd.read_csv({str(tx)!r}); print(len(df))"])
        if code:
            return code
        print(f"pandas.read_csv: {wall_b:7.1f} s wall, {cpu_b:7.1f} s CPU, {rss_b:5.2f} GB peak RSS  (read only)")
        print(f"ratio prepare/read_csv: wall {wall_p / wall_b:.2f}x, CPU {cpu_p / cpu_b:.2f}x, "
              f"peak RSS {rss_p / rss_b:.2f}x")
    ok = wall_p <= 120 and rss_p <= 6
    print(f"targets (<= 120 s wall, <= 6 GB): {'met' if ok else 'NOT met'} "
          f"(scale {args.scale}; shared machine, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
