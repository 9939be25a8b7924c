"""Out-of-core preparation of reviews with DuckDB: memory bounded by ``memory_mb``, not by rows.

:func:`mrs.prep.jsonl.read_reviews_to_parquet` writes the good rows as they are parsed to a
parquet file in the spill directory (raw string ids, timestamps, ratings; one block in memory).
Loading everything back into numpy made peak RSS grow ~55-75 bytes per row (issue 12: dedup's
hash table, k-core masks, split sort orders, the interactions frame), and a string dictionary of
the ids (one copy per distinct id, several during each merge) grew with the distinct ids. Here
the ids are numbered and every per-row step runs in DuckDB on a database file inside the spill
directory, with ``SET memory_limit`` (sorts, windows, joins and hash tables beyond it go to
``temp_directory``, also in the spill directory, so :func:`mrs.prep.spill.spill_dir` removes
everything on success, error and SIGTERM); interactions and users are written by DuckDB
(``COPY``) and moved into the output. Only the item ids come back to Python (``--meta`` matches
them).

The steps give exactly the numpy path's result (``engine=numpy`` in :mod:`mrs.prep.amazon2023`;
``row`` is the position among the good rows of the file):

- seconds: ``ts // 1000`` (floor, as numpy) for milliseconds;
- dedup: of each (user, item) pair the row first by ``(ts, row)`` survives (a stable argsort by
  time, then ``duplicated``);
- k-core: every pass drops, at once, the rows of users or items with fewer than ``k`` rows among
  the kept ones, until a pass drops nothing (at most 100 passes, as :func:`mrs.prep.common.kcore`);
- ids: numbered by first row (``IdBuilder``'s first appearance); compact codes: the used codes,
  ascending, become ``0..k-1`` (first-appearance order among the kept rows);
- leave-last-out: per user by ``(ts, row)``, last = test, previous = valid, users with < 3 rows
  train; temporal: cut on ``max(ts)``; mmrec: ``rng.random`` drawn in row order over the kept rows
  (drawn in blocks: the same stream as one draw), rank within user by ``(key, row)``;
- time modes: :func:`mrs.prep.common.time_mode`'s, in SQL (``MODE_SQL``);
- a benchmark csv comes in the same way (:func:`mrs.prep.csvstream.read_csv_to_parquet`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from mrs.errors import MrsError
from mrs.prep.common import SECONDS_BELOW, nonempty, time_mode, timestamp_unit

BATCH = 1 << 20                    # rows per block moved from numpy/arrow into DuckDB
ROW_GROUP = 1 << 20                # parquet row group of interactions.parquet (as pandas/pyarrow write)
_TS = "make_timestamp(d.ts * 1000000)"  # unix seconds -> TIMESTAMP (UTC, no time zone)
# the time modes of mrs.prep.common.time_mode (pandas dayofweek 0 = Monday; isodow 1 = Monday)
MODE_SQL = {"month": f"month({_TS}) - 1", "week": f"week({_TS}) - 1", "season": f"(month({_TS}) % 12) // 3",
            "weekday_weekend": f"isodow({_TS}) >= 6", "weekday": f"isodow({_TS}) - 1", "hour": f"hour({_TS})"}


@dataclass
class DuckResult:
    """What the caller needs besides the written files: O(distinct items) at most."""

    users: Path                     # users.parquet (user, user_id) written in the spill dir
    n_users: int
    item_ids: np.ndarray            # (I,) raw item ids (object), in new-code order
    counts: dict                    # reviews_read, timestamp_unit, repeated_pairs_dropped, ...
    modes: dict                     # mode name -> {"cardinality", "labels"}
    write: Callable[[Path], tuple[int, np.ndarray]]  # moves the interactions parquet to path; (rows, per split)


def connect(spill: Path, memory_mb: int, threads: int = 0):
    """A DuckDB database file in ``spill`` with its memory limit and temp directory there."""
    import duckdb

    con = duckdb.connect(str(spill / "prep.duckdb"))
    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    con.execute(f"SET temp_directory = '{_quote(spill / 'duckdb.tmp')}'")
    con.execute("SET preserve_insertion_order = false")   # every order here is explicit (row)
    if threads > 0:
        con.execute(f"SET threads = {int(threads)}")
    return con


def load_parquet(con, path: Path) -> None:
    """Tables ``raw(row, u, i, ts, rating)``, ``uid(user_id, u)`` and ``iid(item_id, i)`` from the
    reader's parquet (:func:`mrs.prep.jsonl.read_reviews_to_parquet`): an id's code is its rank by
    first row (first appearance, as :class:`mrs.prep.jsonl.IdBuilder`), computed out of core, so
    no string dictionary is ever held in Python. The parquet file is deleted once loaded."""
    src = f"read_parquet('{_quote(path)}')"
    for col, code, tab in (("user_id", "u", "uid"), ("item_id", "i", "iid")):
        con.execute(f"CREATE TABLE {tab} AS SELECT {col}, (row_number() OVER (ORDER BY first) - 1)::INTEGER "
                    f"AS {code} FROM (SELECT {col}, min(row) AS first FROM {src} GROUP BY {col})")
    con.execute(f"CREATE TABLE raw AS SELECT r.row, uid.u, iid.i, r.ts, r.rating FROM {src} r "
                f"JOIN uid USING (user_id) JOIN iid USING (item_id)")
    path.unlink(missing_ok=True)


def postprocess(con, spill: Path, n_read: int, *, split: str, dedup: bool, kcore: int, unit: str, context_mode: str,
                time_mode_kind: str, test_days: int, valid_days: int, seed: int, where: str) -> DuckResult:
    """Run the steps of the module doc on the loaded tables (``load_parquet``) of
    ``n_read`` rows; files go to ``spill``; ``split``: leave-last-out | temporal | mmrec."""
    q = lambda sql: _one(con, sql)  # noqa: E731
    counts: dict = {"reviews_read": int(n_read)}
    small, first = q(f"SELECT count(*) FILTER (ts < {SECONDS_BELOW}), "
                     f"any_value(ts) FILTER (row = 0) FROM raw") if unit == "auto" else (0, 0)
    unit = timestamp_unit(unit, int(small), n_read, int(first or 0), where)
    counts["timestamp_unit"] = unit
    # floor division (DuckDB's // truncates toward zero; numpy floors)
    sec = "(ts - ((ts % 1000) + 1000) % 1000) // 1000" if unit == "ms" else "ts"
    if dedup:
        con.execute(f"CREATE TABLE d AS SELECT row, u, i, {sec} AS ts, rating FROM raw "
                    f"QUALIFY row_number() OVER (PARTITION BY u, i ORDER BY {sec}, row) = 1")
        counts["repeated_pairs_dropped"] = n_read - int(q("SELECT count(*) FROM d")[0])
    else:
        con.execute(f"CREATE TABLE d AS SELECT row, u, i, {sec} AS ts, rating FROM raw")
    con.execute("DROP TABLE raw")
    n = int(q("SELECT count(*) FROM d")[0])
    if dedup:
        nonempty(n, "dedup")
    if kcore > 1:
        for _ in range(100):
            dropped = q(f"""DELETE FROM d WHERE
                u IN (SELECT u FROM d GROUP BY u HAVING count(*) < {int(kcore)}) OR
                i IN (SELECT i FROM d GROUP BY i HAVING count(*) < {int(kcore)})""")[0]
            if not dropped:
                break
        n = int(q("SELECT count(*) FROM d")[0])
        nonempty(n, f"the k-core filter (kcore={kcore})")
    con.execute("CREATE TABLE um AS SELECT u, (row_number() OVER (ORDER BY u) - 1)::INTEGER AS user "
                "FROM (SELECT DISTINCT u FROM d)")
    con.execute("CREATE TABLE im AS SELECT i, (row_number() OVER (ORDER BY i) - 1)::INTEGER AS item "
                "FROM (SELECT DISTINCT i FROM d)")
    # from here on COPY writes ordered results: insertion order must hold for it to keep the order
    con.execute("SET preserve_insertion_order = true")
    users = spill / "users.parquet"
    con.execute(f"COPY (SELECT um.user::BIGINT AS user, uid.user_id FROM um JOIN uid USING (u) ORDER BY um.user) "
                f"TO '{_quote(users)}' (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP})")
    n_users = int(q("SELECT count(*) FROM um")[0])
    item_ids = con.sql("SELECT iid.item_id FROM im JOIN iid USING (i) ORDER BY im.item").to_arrow_table()
    item_ids = item_ids.column(0).to_numpy(zero_copy_only=False)        # (I,) object: --meta matches them

    label = _split_sql(con, split, n, test_days, valid_days, seed)
    kinds = {m: k for m, k in (("context", context_mode), ("time", time_mode_kind)) if k != "none"}
    modes = {m: time_mode(np.zeros(1, np.int64), k)[1] for m, k in kinds.items()}   # labels only
    mode_cols = "".join(f", ({MODE_SQL[k]})::INTEGER AS {m}" for m, k in kinds.items())
    path = spill / "interactions.parquet"
    con.execute(f"""COPY (
        SELECT um.user, im.item, d.ts{mode_cols}, ({label})::TINYINT AS split, d.rating
        FROM d JOIN um USING (u) JOIN im USING (i) {"JOIN k USING (row)" if split == "mmrec" else ""}
        ORDER BY d.row) TO '{_quote(path)}' (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP})""")
    per_split = np.zeros(3, np.int64)
    for s_, c in con.execute(f"SELECT split, count(*) FROM read_parquet('{_quote(path)}') GROUP BY split").fetchall():
        per_split[int(s_)] = int(c)
    if int(per_split.sum()) != n:
        raise AssertionError(f"{path}: {int(per_split.sum())} interactions written, expected {n}")

    def write(dest: Path) -> tuple[int, np.ndarray]:
        os.replace(path, dest)        # the spill dir is beside the output: a rename, never a copy
        return n, per_split

    return DuckResult(users=users, n_users=n_users, item_ids=item_ids, counts=counts, modes=modes, write=write)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _one(con, sql: str) -> tuple:
    """The first row of ``sql``, its result finished (DuckDB refuses new work on a connection with
    an unfinished result)."""
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else ()


def _split_sql(con, split: str, n: int, test_days: int, valid_days: int, seed: int) -> str:
    """The split label as an SQL expression over ``d`` (and table ``k`` for mmrec)."""
    if split == "leave-last-out":
        return """CASE WHEN count(*) OVER (PARTITION BY d.u) < 3 THEN 0
                       WHEN row_number() OVER (PARTITION BY d.u ORDER BY d.ts DESC, d.row DESC) = 1 THEN 2
                       WHEN row_number() OVER (PARTITION BY d.u ORDER BY d.ts DESC, d.row DESC) = 2 THEN 1
                       ELSE 0 END"""
    if split == "temporal":
        day = 86400
        end = int(_one(con, "SELECT max(ts) FROM d")[0]) // day * day + day
        test_start = end - test_days * day
        valid_start = test_start - valid_days * day
        return f"CASE WHEN d.ts >= {test_start} THEN 2 WHEN d.ts >= {valid_start} THEN 1 ELSE 0 END"
    if split != "mmrec":
        raise MrsError(f"split {split!r}: not one of leave-last-out, temporal, mmrec")
    # the key of the p-th kept row (file order) is the p-th draw, as rng.random(n) over the rows
    rng = np.random.default_rng(seed)
    schema = pa.schema([("pos", pa.int64()), ("key", pa.float64())])

    def keys() -> Iterator[pa.RecordBatch]:
        for start in range(0, n, BATCH):
            m = min(BATCH, n - start)
            yield pa.RecordBatch.from_arrays([pa.array(np.arange(start, start + m, dtype=np.int64)),
                                              pa.array(rng.random(m))], schema=schema)

    con.register("keys", pa.RecordBatchReader.from_batches(schema, keys()))
    con.execute("CREATE TABLE k AS SELECT p.row, keys.key, p.pos FROM "
                "(SELECT row, row_number() OVER (ORDER BY row) - 1 AS pos FROM d) p JOIN keys USING (pos)")
    con.unregister("keys")
    w = "PARTITION BY d.u"
    nn = f"count(*) OVER ({w})"
    rank = f"(row_number() OVER ({w} ORDER BY k.key, k.pos) - 1)"
    vt = f"CASE WHEN {nn} < 10 THEN 2 ELSE CAST(trunc({nn} * 0.2::DOUBLE) AS BIGINT) END"
    n_val = f"CASE WHEN {nn} < 10 THEN 1 ELSE ({vt}) // 2 END"
    n_train = f"({nn} - ({vt}))"
    return (f"CASE WHEN {nn} < 3 THEN 0 WHEN {rank} < {n_train} THEN 0 "
            f"WHEN {rank} < {n_train} + ({n_val}) THEN 1 ELSE 2 END")
