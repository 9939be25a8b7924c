"""Benchmark: ``mrs prepare amazon2023`` on raw review jsonl, DuckDB vs numpy post-processing, against
``pyarrow.json.read_json`` of the same file, at several sizes (peak RSS against rows).

    python experiments/benchmarks/bench_prepare_amazon2023.py --raw /tmp/az/raw10m \\
        --lines 2500000 5000000 10000000

``--raw`` holds ``mrs synth --format amazon2023 --no-images`` output (generated when missing, at
Clothing_Shoes_and_Jewelry's users/items per review: 22.6M and 7.2M per 66.0M lines, scaled to the
largest ``--lines``); each size is the first N lines of that file (written under ``--work``). Each
command runs in its own child process, so peak RSS is that child's own (``os.wait4``):

1. ``pyarrow.json.read_json`` of the file with the same five columns (reading only, threads on):
   the baseline of the ratios;
2. ``mrs prepare amazon2023`` with ``engine=duckdb`` (the default: codes and timestamps spilled,
   dictionaries bounded by distinct ids, then dedup/k-core/split/the interactions write out of
   core in DuckDB under ``memory_mb``; :mod:`mrs.prep.duckpost`);
3. the same with ``engine=numpy`` (spilled reading, then post-processing in numpy: the path
   before DuckDB, whose peak grows with rows).

``--set KEY=VALUE`` is passed to both prepares (e.g. ``kcore=5``, ``memory_mb=1024``).

Prints one row per (size, command) and the ratios to pyarrow's wall time per line of the same
size (or of its first ``--pyarrow-max-lines`` lines, where the whole file would not fit in memory).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prepare_hm import run_child  # noqa: E402  (wall, CPU, peak RSS, exit code of a child)
CLOTHING = {"lines": 66_033_346, "users": 22_613_310, "items": 7_218_481}   # raw review file sizes

PYARROW = r"""
import sys, pyarrow as pa, pyarrow.json as pj
schema = pa.schema([("user_id", pa.string()), ("parent_asin", pa.string()), ("asin", pa.string()),
                    ("rating", pa.float64()), ("timestamp", pa.int64())])
t = pj.read_json(sys.argv[1], parse_options=pj.ParseOptions(explicit_schema=schema,
                 unexpected_field_behavior="ignore"))
print(t.num_rows)
"""


def head(src: Path, dst: Path, n: int) -> int:
    """Copy the first ``n`` lines of ``src`` to ``dst`` (1 MiB buffers); return lines copied."""
    done = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        for line in f:
            g.write(line)
            done += 1
            if done == n:
                break
    return done


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", default="/tmp/mrs_bench/az_raw", help="mrs synth amazon2023 output")
    ap.add_argument("--work", default="/tmp/mrs_bench/az_work", help="prefix files and outputs (deleted)")
    ap.add_argument("--lines", type=int, nargs="+", default=[2_500_000, 5_000_000, 10_000_000],
                    help="prefix sizes; 0: the whole --raw file (e.g. a full-size synth)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["duckdb", "numpy", "pyarrow"])
    ap.add_argument("--pyarrow-max-lines", type=int, default=0,
                    help="pyarrow reads at most this many lines (a prefix) of a larger size: its table is "
                         "~200 B per line in memory; ratios are per line")
    ap.add_argument("--set", nargs="*", default=[], help="KEY=VALUE config for both prepares")
    args = ap.parse_args()
    raw, work = Path(args.raw), Path(args.work)
    mrs = [sys.executable, "-m", "mrs"]
    n_max = max(args.lines) or CLOTHING["lines"]
    reviews = next(iter(raw.glob("*.jsonl")), None) if raw.is_dir() else None
    if reviews is None:
        scale = n_max / CLOTHING["lines"]
        cmd = mrs + ["synth", "--format", "amazon2023", "--out", str(raw), "--no-images",
                     "--interactions", str(n_max), "--users", str(int(CLOTHING["users"] * scale)),
                     "--items", str(int(CLOTHING["items"] * scale)), "--seed", "0"]
        print("generating:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    reviews = next(p for p in raw.glob("*.jsonl") if not p.name.startswith("meta_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'lines':>11} {'command':<26} {'wall s':>8} {'CPU s':>8} {'peak GB':>8} "
          f"{'B/row':>6} {'users':>9} {'items':>9}", flush=True)
    for n in sorted(args.lines, key=lambda n: n or float("inf")):
        part = work / f"reviews_{n}.jsonl" if n else reviews     # 0: the whole file, not copied
        got = head(reviews, part, n) if n else count_lines(reviews)
        base = None
        pa_part, pa_lines = part, got
        if args.pyarrow_max_lines and got > args.pyarrow_max_lines:   # it holds the whole table in memory
            pa_part = work / f"reviews_pyarrow_{args.pyarrow_max_lines}.jsonl"
            pa_lines = head(reviews, pa_part, args.pyarrow_max_lines)
        runs = [("pyarrow.json.read_json", [sys.executable, "-c", PYARROW, str(pa_part)], "pyarrow"),
                *[(f"prepare engine={e}", mrs + ["prepare", "amazon2023", "--reviews", str(part), "--out",
                                                 str(work / f"out_{e}"), "--set", f"engine={e}",
                                                 *[x for kv in args.set for x in ("--set", kv)]], e)
                  for e in ("duckdb", "numpy")]]
        for name, cmd, key in runs:
            if key in args.skip:
                continue
            wall, cpu, peak, code = run_child(cmd)
            users = items = ""
            out = work / f"out_{key}"
            if key != "pyarrow" and code == 0:
                meta = json.loads((out / "dataset.json").read_text())
                users, items = meta.get("n_users", ""), meta.get("n_items", "")
                shutil.rmtree(out, ignore_errors=True)
            lines = pa_lines if key == "pyarrow" else got
            if key == "pyarrow":
                base = wall / pa_lines                     # per line: pa_lines may be a prefix
                if pa_part != part:
                    pa_part.unlink()
            ratio = f" ({wall / got / base:.2f}x pyarrow wall per line)" if base and key != "pyarrow" else ""
            rows.append(dict(lines=lines, command=name, wall=wall, cpu=cpu, peak_gb=peak, code=code, users=users,
                             items=items))
            print(f"{lines:>11,} {name:<26} {wall:>8.1f} {cpu:>8.1f} {peak:>8.2f} "
                  f"{peak * 1024**3 / lines:>6.0f} {users!s:>9} {items!s:>9}{ratio}"
                  + ("" if code == 0 else f"  FAILED ({code})"), flush=True)
        if part != reviews:
            part.unlink()
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
