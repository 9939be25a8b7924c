"""The reading stage of a benchmark csv alone: wall, peak RSS and Arrow-allocated bytes, for the
streamed reader (:func:`mrs.prep.csvstream.read_csv_to_parquet`) at a given pyarrow block cap, and
for the alternatives it was chosen over (bare pyarrow streaming, serial or threaded; DuckDB's own
``read_csv`` to parquet). One mode per process, so the peak is that mode's own.

    python experiments/scale/profile_csv_read.py CSV stream [--block-max BYTES] [--block-bytes BYTES]
    python experiments/scale/profile_csv_read.py CSV pyarrow-serial|pyarrow-threads|duckdb
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pyarrow as pa


def rss_mb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", type=Path)
    ap.add_argument("mode", choices=["stream", "pyarrow-serial", "pyarrow-threads", "duckdb"])
    ap.add_argument("--block-bytes", type=int, default=1 << 26)   # Amazon2023Config's default
    ap.add_argument("--block-max", type=int, default=None)         # override csvstream.BLOCK_MAX
    ap.add_argument("--out", type=Path, default=Path("/tmp/profile_csv_read.parquet"))
    a = ap.parse_args()
    t0, rows, most_alloc = time.time(), 0, 0
    if a.mode == "stream":
        from mrs.prep import csvstream
        from mrs.prep.common import BadRows
        if a.block_max:
            csvstream.BLOCK_MAX = a.block_max
        check = csvstream._check

        def watched(*args):            # Arrow's bytes in use while blocks are consumed
            nonlocal most_alloc
            most_alloc = max(most_alloc, pa.total_allocated_bytes())
            return check(*args)

        csvstream._check = watched
        rows = csvstream.read_csv_to_parquet(a.csv, BadRows(str(a.csv)), a.block_bytes, a.out)
    elif a.mode.startswith("pyarrow"):
        import pyarrow.csv as pacsv
        names = ["user_id", "parent_asin", "rating", "timestamp"]
        reader = pacsv.open_csv(a.csv, read_options=pacsv.ReadOptions(
            use_threads=a.mode == "pyarrow-threads", block_size=a.block_bytes, column_names=names, skip_rows=1),
            convert_options=pacsv.ConvertOptions(column_types={"user_id": pa.string(), "parent_asin": pa.string(),
                                                               "rating": pa.float32(), "timestamp": pa.int64()}))
        for batch in reader:
            rows += batch.num_rows
            most_alloc = max(most_alloc, pa.total_allocated_bytes())
    else:
        import duckdb
        con = duckdb.connect()
        con.execute("SET memory_limit = '2048MB'")
        src = str(a.csv).replace("'", "''")
        con.execute(f"COPY (SELECT * FROM read_csv('{src}', header = true, columns = {{'user_id': 'VARCHAR', "
                    f"'parent_asin': 'VARCHAR', 'rating': 'FLOAT', 'timestamp': 'BIGINT'}})) "
                    f"TO '{a.out}' (FORMAT parquet)")
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{a.out}')").fetchone()[0]
    wall = time.time() - t0
    a.out.unlink(missing_ok=True)
    print(f"{a.mode} block_bytes={a.block_bytes} block_max={a.block_max}: {rows} rows, {wall:.1f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB, end RSS {rss_mb()} MB, "
          f"most Arrow-allocated {most_alloc >> 20} MB")


if __name__ == "__main__":
    main()
