"""A benchmark review csv streamed in blocks to the raw parquet layout of the jsonl reader.

``user_id,parent_asin,rating,timestamp[,history]`` (Amazon 2023's 0core/5core ``rating_only``
files) is read by pyarrow's streaming reader (``pyarrow.csv.open_csv``) in blocks of at most
:data:`BLOCK_MAX` bytes, and each block's good rows are written as they come to the parquet file
of :func:`mrs.prep.jsonl.read_reviews_to_parquet` (:data:`mrs.prep.jsonl.RAW_SCHEMA`: position
among the good rows, raw user and item ids, timestamp as stored, rating), so that
:mod:`mrs.prep.duckpost` numbers ids, dedups, splits and writes out of core, and reading holds a
few blocks whatever the number of rows (a 23.1M-row csv read whole peaked at 3.84 GiB).

The bad-row rules are :func:`mrs.prep.csvread.read_csv_typed`'s, so both engines report the same:

- the header must name ``user_id``, ``parent_asin`` and ``timestamp`` (else one line naming the
  missing column); a pandas index column is ignored; other columns are ignored;
- rows with the wrong field count are skipped (pyarrow's ``invalid_row_handler``);
- values are parsed typed; if one does not (a conversion error), the file is read again with
  ``rating``/``timestamp`` as text, and rows with an unparseable value are dropped;
- rows with an empty ``user_id``, ``parent_asin`` or ``timestamp`` are dropped;
- each dropped row is counted once, with its file line; the reasons and the first lines reach
  ``bad`` in the order the whole-file reader finds them (wrong field count, then column by column),
  so the summary and the ``max_bad_frac`` error are the same text.

The reader is serial (``use_threads=False``): it then knows every skipped row's line number, and
on this data it is as fast as the threaded one. Its blocks are at most :data:`BLOCK_MAX` bytes
whatever ``block_bytes``: pyarrow reads blocks ahead in a background thread, so 64 MiB blocks
held most of the file at once. ``experiments/scale/profile_csv_read.py`` (reading alone) printed,
on the 23.1M-row csv: 64 MiB blocks 27.2 s, peak RSS 1681 MB (1291 MB allocated by Arrow); 2 MiB
blocks 19.6 s, 272 MB (294 MB on its 5M-row prefix: flat in rows); and on the 5M-row prefix, bare
pyarrow serial 1.0 s / threaded 0.9 s, this reader with its checks and parquet write 2.5 s,
DuckDB's ``read_csv`` to parquet 3.2 s (and its bad-row rules are its own, not
``read_csv_typed``'s).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from mrs.errors import MrsError
from mrs.prep.common import BadRows, reading, require_columns
from mrs.prep.csvread import _convert, _empty_mask, _line_numbers, index_column, read_header
from mrs.prep.jsonl import RAW_SCHEMA

TYPES = {"user_id": pa.string(), "parent_asin": pa.string(), "rating": pa.float32(), "timestamp": pa.int64()}
REQUIRED = ("user_id", "parent_asin", "timestamp")   # also the columns that must not be empty
BLOCK_MAX = 1 << 21                # bytes per block of pyarrow's reader (module doc: its readahead)
_WRONG = "wrong field count"


class _Found:
    """Dropped rows per reason: a count and the first ``keep`` lines, given to ``BadRows`` at the
    end in the whole-file reader's order (``reasons`` lists it)."""

    def __init__(self, reasons: list[str], keep: int):
        self.keep = keep
        self.count = {r: 0 for r in reasons}
        self.lines: dict[str, list[int]] = {r: [] for r in reasons}

    def add(self, reason: str, lines: np.ndarray | list[int]) -> None:
        self.count[reason] += len(lines)
        room = self.keep - len(self.lines[reason])
        if room > 0:
            self.lines[reason].extend(int(x) for x in lines[:room])

    def into(self, bad: BadRows) -> None:
        for reason, n in self.count.items():
            if n:
                shown = self.lines[reason]
                bad.add_lines(np.array(shown, dtype=np.int64), reason)
                bad.bad += n - len(shown)             # counted, not listed (only the first few are)
                bad.reasons[reason] = bad.reasons.get(reason, 0) + n - len(shown)


def read_csv_to_parquet(path: Path, bad: BadRows, block_bytes: int, out: Path) -> int:
    """Good rows of the review csv ``path`` written block by block to the parquet file ``out``
    (:data:`RAW_SCHEMA`); bad rows counted in ``bad`` (module doc). Returns the number of rows."""
    names = read_header(path)
    if index_column(names) is not None:
        names = ["__index__"] + names[1:]
    require_columns(names, REQUIRED, path)
    cols = [c for c in TYPES if c in names]
    as_text, block = False, min(block_bytes, BLOCK_MAX)
    while True:                        # nothing reaches ``bad`` before a read ends: a retry starts clean
        try:
            return _stream(path, names, cols, bad, block, out, as_text)
        except pa.ArrowInvalid as e:
            msg = str(e).splitlines()[0]
            if "conversion error" in msg and not as_text:
                as_text = True         # read again with the numbers as text, checked row by row
            elif "straddl" in msg and block < block_bytes:
                block = block_bytes    # a row longer than BLOCK_MAX: blocks as large as asked
            elif "straddl" in msg:
                raise MrsError(f"{path}: a row longer than block_bytes={block_bytes}; raise the config "
                               f"key block_bytes ({msg})") from None
            else:
                raise MrsError(f"{path}: {msg}") from None


def _stream(path: Path, names: list[str], cols: list[str], bad: BadRows, block: int, out: Path,
            as_text: bool) -> int:
    import pyarrow.parquet as pq

    from mrs.prep.spill import disk_errors

    text = [c for c in cols if as_text and not pa.types.is_string(TYPES[c])]
    found = _Found([_WRONG] + [f"{k} {c}" for c in cols for k in ("unparseable", "empty")], bad.keep)
    skipped: list[int] = []            # lines of wrong-field-count rows, in file order

    def on_invalid(row) -> str:
        skipped.append(row.number)     # known: the reader is serial
        return "skip"

    n = seen = 0                       # good rows written; rows pyarrow kept (good + dropped for a value)
    with disk_errors(out):             # a write error names the spill file, a read error the csv
        w = pq.ParquetWriter(out, RAW_SCHEMA, compression="snappy")
    try:
        with reading(path), pa.OSFile(str(path)) as raw, \
                tqdm(desc=f"reading {path.name}", total=path.stat().st_size, unit="B", unit_scale=True,
                     mininterval=2.0, leave=False) as bar:
            src = pa.CompressedInputStream(raw, "gzip") if path.suffix == ".gz" else raw
            reader = pacsv.open_csv(
                src,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=block,
                                               column_names=names, skip_rows=1),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() if c in text else TYPES[c] for c in cols},
                    include_columns=cols))
            for batch in reader:       # (B,) rows of in blocks
                t = _check(batch, cols, text, found, seen, skipped)
                seen += batch.num_rows
                if t.num_rows:
                    row = pa.array(np.arange(n, n + t.num_rows, dtype=np.int64))
                    with disk_errors(out):
                        w.write_batch(pa.RecordBatch.from_arrays(
                            [row, *(c.combine_chunks() for c in t.columns)], schema=RAW_SCHEMA))
                n += t.num_rows
                bar.update(raw.tell() - bar.n)
    finally:
        with disk_errors(out):
            w.close()
    found.add(_WRONG, skipped)
    bad.total += seen + len(skipped)
    found.into(bad)
    return n


def _check(batch: pa.RecordBatch, cols: list[str], text: list[str], found: _Found, seen: int,
           skipped: list[int]) -> pa.Table:
    """The block's good rows as (user_id, item_id, ts, rating) (:data:`RAW_SCHEMA` minus ``row``),
    the others noted in ``found``: per column, unparseable (a ``text`` column), then empty."""
    drop = np.zeros(batch.num_rows, dtype=bool)                     # (B,)
    columns = {}
    for name in cols:
        col = pa.chunked_array([batch.column(name)])
        if name in text:
            col, unparseable = _convert(col, TYPES[name])
            _note(found, f"unparseable {name}", unparseable & ~drop, seen, skipped)
            drop |= unparseable
        if name in REQUIRED:
            empty = _empty_mask(col)
            _note(found, f"empty {name}", empty & ~drop, seen, skipped)
            drop |= empty
        columns[name] = col.combine_chunks()
    rating = (np.asarray(columns["rating"].to_numpy(zero_copy_only=False), dtype=np.float32)
              if "rating" in columns else np.full(batch.num_rows, np.nan, np.float32))  # null -> NaN, as numpy
    t = pa.table({"user_id": columns["user_id"], "item_id": columns["parent_asin"],
                  "ts": columns["timestamp"].cast(pa.int64()), "rating": pa.array(rating)})
    return t.filter(pa.array(~drop)) if drop.any() else t


def _note(found: _Found, reason: str, mask: np.ndarray, seen: int, skipped: list[int]) -> None:
    """Count the rows of ``mask`` (a block whose first row is the ``seen``-th kept row) under
    ``reason``, with their file lines (every skipped row before them is already in ``skipped``)."""
    rows = np.flatnonzero(mask)
    if len(rows):
        found.add(reason, _line_numbers(seen + rows, np.array(skipped, dtype=np.int64)))
