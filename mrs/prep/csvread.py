"""Typed, memory-lean CSV reading with pyarrow, with malformed rows skipped and counted.

The fast path parses every column straight to its final type (ids as int64, dates as date32,
strings dictionary-encoded), so a 31.8M-row file never becomes Python objects. Rows with the wrong
field count are dropped by pyarrow's ``invalid_row_handler`` (with their line numbers). If a value
does not parse (a bad date or number), the file is re-read with those columns as text and each is
validated with ``pyarrow.compute``. Rows with an unparseable value, or an empty value in a
``nonempty`` column, are dropped and counted once each with their file line.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mrs.errors import MrsError
from mrs.prep.common import BadRows, reading, require_columns

_INT_RE = r"^\s*[+-]?\d+\s*$"
_NUM_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_DATE_FMT = "%Y-%m-%d"


def read_header(path: Path, delimiter: str = ",") -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    # utf-8-sig: a byte order mark (Excel's csv) is not part of the first column's name
    with reading(path), opener(path, "rt", newline="", encoding="utf-8-sig", errors="replace") as f:
        try:
            return next(csv.reader(f, delimiter=delimiter))
        except StopIteration:
            raise MrsError(f"{path}: empty file (no header)") from None


def index_column(names: Sequence[str]) -> str | None:
    """The leading unnamed index column pandas writes on ``to_csv`` (``""`` or ``Unnamed: 0``)."""
    if names and (names[0].strip() == "" or names[0].startswith("Unnamed")):
        return names[0]
    return None


def read_csv_typed(path: Path, types: dict[str, pa.DataType], bad: BadRows, required: Sequence[str],
                   nonempty: Sequence[str] = (), block_size: int = 1 << 26,
                   newlines_in_values: bool = False, delimiter: str = ",",
                   names: Sequence[str] | None = None, limits: Mapping[str, float] | None = None,
                   line_numbers: bool = False) -> pa.Table:
    """Read the ``types`` columns present in ``path`` (header row; other columns ignored).

    ``required`` columns must be in the header (else a one-line ``MrsError``); rows with an empty
    value in a ``nonempty`` column or an unparseable value anywhere are dropped and counted in ``bad``.
    ``newlines_in_values``: quoted fields may span lines (free text); slower, and the reported line
    numbers then count records, not physical lines. ``delimiter``: ``"\t"`` for tab-separated
    files; ``names``: column names to use instead of the header row's (which is still skipped).
    ``limits``: ``{numeric column: bound}``; a value that is inf or beyond ``±bound`` (``1e30``
    seconds, which an int64 cast would wrap to -2**63) is dropped and counted like an unparseable
    one. ``line_numbers``: add a ``__line__`` int64 column, each kept row's 1-based file line, so a
    caller can name the row of a value it refuses.
    """
    names = list(names) if names is not None else read_header(path, delimiter)
    if index_column(names) is not None:
        names = ["__index__"] + names[1:]
    require_columns(names, required, path)
    cols = [c for c in types if c in names]
    skipped: list[int] = []

    def on_invalid(row) -> str:
        skipped.append(row.number if row.number is not None else -1)
        bad.add(row.number, "wrong field count")
        return "skip"

    def read(col_types: dict[str, pa.DataType], threads: bool) -> pa.Table:
        with reading(path):
            return _read_csv(col_types, threads)

    def _read_csv(col_types: dict[str, pa.DataType], threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=block_size,
                                           column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, delimiter=delimiter,
                                             newlines_in_values=newlines_in_values),
            convert_options=pacsv.ConvertOptions(column_types=col_types, include_columns=cols))

    saved = (bad.bad, dict(bad.reasons), list(bad.first))
    text_cols = [c for c in cols if not (pa.types.is_dictionary(types[c]) or pa.types.is_string(types[c]))]

    def attempt(threads: bool) -> tuple[pa.Table, list[str]]:
        """Typed read; on an unparseable value, read the non-string columns as text instead."""
        for as_text in ([], text_cols):
            bad.bad, bad.reasons, bad.first = saved[0], dict(saved[1]), list(saved[2])
            skipped.clear()
            try:
                return read({c: (pa.string() if c in as_text else types[c]) for c in cols}, threads), as_text
            except pa.ArrowInvalid as e:
                if "conversion error" not in str(e) or as_text:
                    raise MrsError(f"{path}: {str(e).splitlines()[0]}") from None
        raise AssertionError("unreachable")

    table, text_cols = attempt(threads=True)
    if skipped:
        # pyarrow knows a bad row's line number only when reading serially: redo it that way, so
        # the report names exact lines (rare: only files with wrong-field-count rows pay for it).
        table, text_cols = attempt(threads=False)
    bad.total += table.num_rows + len(skipped)
    lines = np.sort(np.array([s for s in skipped if s >= 0], dtype=np.int64))

    drop = np.zeros(table.num_rows, dtype=bool)
    columns = {}
    for name in cols:
        col = table[name]
        if name in text_cols:
            col, unparseable = _convert(col, types[name])
            _count(unparseable & ~drop, f"unparseable {name}", bad, lines)
            drop |= unparseable
        if name in nonempty:
            empty = _empty_mask(col)
            _count(empty & ~drop, f"empty {name}", bad, lines)
            drop |= empty
        if limits and name in limits:
            v = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)   # null -> nan
            with np.errstate(invalid="ignore"):
                off = np.isinf(v) | (np.abs(v) > limits[name])
            _count(off & ~drop, f"{name} infinite or beyond ±{limits[name]:.3g}", bad, lines)
            drop |= off
        columns[name] = col
    if line_numbers:
        columns["__line__"] = pa.array(_line_numbers(np.arange(table.num_rows), lines))
    table = pa.table(columns)
    return table.filter(pa.array(~drop)) if drop.any() else table


def _convert(col: pa.ChunkedArray, tp: pa.DataType) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Text column -> ``tp``; (values with failures as null, mask of non-empty unparseable cells)."""
    empty = pc.or_(pc.is_null(col), pc.equal(pc.utf8_trim_whitespace(col), ""))
    if pa.types.is_date(tp) or pa.types.is_timestamp(tp):
        parsed = pc.strptime(col, format=_DATE_FMT, unit="s", error_is_null=True)
        good = pc.is_valid(parsed)
        value = parsed.cast(tp)
    else:
        good = pc.match_substring_regex(col, _INT_RE if pa.types.is_integer(tp) else _NUM_RE)
        good = pc.fill_null(good, False)
        value = pc.if_else(good, pc.utf8_trim_whitespace(col), None).cast(tp)
    bad = pc.and_(pc.invert(empty), pc.invert(good))
    return value, np.asarray(pc.fill_null(bad, False).to_numpy(zero_copy_only=False), dtype=bool)


def _empty_mask(col: pa.ChunkedArray) -> np.ndarray:
    """Null or empty-string cells; dictionary columns are checked on their (small) dictionaries."""
    parts = []
    for chunk in col.chunks:
        null = np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_dictionary(chunk.type):
            dict_empty = np.asarray(pc.equal(pc.utf8_trim_whitespace(chunk.dictionary), "")
                                    .to_numpy(zero_copy_only=False), dtype=bool)
            idx = chunk.indices.fill_null(0).to_numpy()
            parts.append(null | dict_empty[idx] if len(dict_empty) else null)
        elif pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
            # length 0 or all whitespace; neither allocates a trimmed copy of the strings
            e = pc.or_(pc.equal(pc.utf8_length(chunk), 0), pc.utf8_is_space(chunk))
            parts.append(null | np.asarray(pc.fill_null(e, True).to_numpy(zero_copy_only=False), dtype=bool))
        else:
            parts.append(null)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _count(mask: np.ndarray, reason: str, bad: BadRows, skipped_lines: np.ndarray) -> None:
    rows = np.flatnonzero(mask)
    if len(rows):
        bad.add_lines(_line_numbers(rows, skipped_lines), reason)


def _line_numbers(rows: np.ndarray, skipped_lines: np.ndarray) -> np.ndarray:
    """1-based file lines of rows ``rows`` (0-based among kept rows), given the dropped lines."""
    if len(skipped_lines) == 0:
        return rows + 2
    gaps = skipped_lines - 2 - np.arange(len(skipped_lines))
    return rows + 2 + np.searchsorted(gaps, rows, side="right")
