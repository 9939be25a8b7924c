"""Streaming readers for Amazon Reviews 2023 jsonl(.gz): reviews and item metadata.

A 66M-line review file is never held whole: it is read in blocks of ``block_bytes`` (cut at a
newline), each block is parsed by pyarrow's C++ JSON reader into just the needed columns (no
Python work per line), and string ids are dictionary-encoded per block (:class:`IdBuilder`), so
only int codes, per-block dictionaries and timestamps stay in memory. Only a block with a broken
line is split into lines and re-parsed with ``json`` to find, skip and count the bad ones, and
line numbers are computed only for a block that has bad rows (``file:line`` positions kept).
"""
from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from tqdm import tqdm

from mrs.prep.common import BOM, BadRows, reading

REVIEW_SCHEMA = pa.schema([("user_id", pa.string()), ("parent_asin", pa.string()), ("asin", pa.string()),
                           ("rating", pa.float64()), ("timestamp", pa.int64())])


def open_text(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


class IdBuilder:
    """Raw string ids -> 0..n-1 in order of first appearance, built chunk by chunk.

    Each chunk is dictionary-encoded on its own; ``finish`` unifies the chunk dictionaries with one
    C++ hash pass (``pc.dictionary_encode`` over a chunked array shares one memo table), so no
    Python dict of millions of strings is ever built.
    """

    def __init__(self) -> None:
        self.codes: list[np.ndarray] = []
        self.dicts: list[pa.Array] = []

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if pa.types.is_dictionary(values.type):
            enc = values
        else:
            enc = pc.dictionary_encode(values)
        self.codes.append(enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        self.dicts.append(enc.dictionary.cast(pa.large_string()))

    def finish(self) -> tuple[np.ndarray, pa.Array]:
        """(global code per added value, unique raw ids in code order)."""
        if not self.dicts:
            return np.zeros(0, np.int64), pa.array([], pa.large_string())
        enc = pc.dictionary_encode(pa.chunked_array(self.dicts, type=pa.large_string()))
        remap = np.concatenate([c.indices.to_numpy() for c in enc.chunks]).astype(np.int64) \
            if enc.num_chunks else np.zeros(0, np.int64)
        uniques = enc.chunks[0].dictionary if enc.num_chunks else pa.array([], pa.large_string())
        offsets = np.cumsum([0] + [len(d) for d in self.dicts[:-1]])
        codes = np.concatenate([remap[o + c] for o, c in zip(offsets, self.codes)])
        self.codes, self.dicts = [], []
        return codes, uniques


def _blocks(f: IO[bytes], block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(block of whole lines, 1-based number of its first line)."""
    rest, first, start = b"", 1, True
    while True:
        data = f.read(block_bytes)
        if start:
            data, start = data.removeprefix(BOM), False  # a byte order mark is not JSON
        if not data:
            if rest.strip():
                yield rest + b"\n", first
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:                                   # one line longer than a block: read on
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        yield block, first
        first += block.count(b"\n")


def _lines(block: bytes, first: int) -> tuple[list[bytes], np.ndarray]:
    """The block's non-blank lines and their line numbers (pyarrow skips blank lines too)."""
    lines = block.split(b"\n")[:-1]
    keep = [k for k, line in enumerate(lines) if line.strip()]
    return [lines[k] + b"\n" for k in keep], first + np.array(keep, dtype=np.int64)


def _parse_block(block: bytes, first: int, bad: BadRows) -> tuple[pa.Table, np.ndarray | None]:
    """(table of the block's good JSON lines, their line numbers or None when not yet needed)."""
    try:
        return pj.read_json(io.BytesIO(block),
                            read_options=pj.ReadOptions(use_threads=False, block_size=len(block) + 1),
                            parse_options=pj.ParseOptions(explicit_schema=REVIEW_SCHEMA,
                                                          unexpected_field_behavior="ignore")), None
    except pa.ArrowInvalid:
        pass
    lines, numbers = _lines(block, first)
    rows: dict[str, list] = {k: [] for k in REVIEW_SCHEMA.names}
    good: list[int] = []
    for line, n in zip(lines, numbers):        # slow path, only for a block with a broken line
        bad_reason = None
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError
        except ValueError:
            bad_reason = "broken JSON line"
        else:
            vals = {k: obj.get(k) for k in REVIEW_SCHEMA.names}
            try:
                vals["timestamp"] = None if vals["timestamp"] is None else int(vals["timestamp"])
                vals["rating"] = None if vals["rating"] is None else float(vals["rating"])
            except (ValueError, TypeError):
                bad_reason = "unparseable timestamp or rating"
            for k in ("user_id", "parent_asin", "asin"):
                vals[k] = None if vals[k] is None else str(vals[k])
        if bad_reason:
            bad.add(int(n), bad_reason)
            bad.total += 1
            continue
        for k, v in vals.items():
            rows[k].append(v)
        good.append(int(n))
    return pa.table(rows, schema=REVIEW_SCHEMA), np.array(good, dtype=np.int64)


def _review_blocks(path: Path, bad: BadRows, block_bytes: int
                   ) -> Iterator[tuple[pa.ChunkedArray, pa.ChunkedArray, np.ndarray, np.ndarray]]:
    """Per block of good rows: (user ids, item ids (parent_asin, else asin), timestamps as stored
    int64, ratings float32); bad rows are counted in ``bad`` and skipped."""
    total = path.stat().st_size if path.suffix != ".gz" else None
    with reading(path), open_text(path) as f, tqdm(desc=f"reading {path.name}", total=total, unit="B",
                                                   unit_scale=True, mininterval=2.0, leave=False) as bar:
        for block, first in _blocks(f, block_bytes):
            t, rows_lines = _parse_block(block, first, bad)
            bad.total += t.num_rows
            parent = t["parent_asin"]                    # "" falls back to asin, like a missing one
            item = pc.coalesce(pc.if_else(pc.equal(parent, ""), None, parent), t["asin"])
            checks = [(_mask(pc.equal(pc.utf8_trim_whitespace(t["user_id"]), "")), "empty user_id"),
                      (_mask(pc.equal(pc.utf8_trim_whitespace(item), "")), "empty parent_asin"),
                      (_mask(pc.is_null(t["timestamp"])), "missing timestamp")]
            drop = np.zeros(t.num_rows, dtype=bool)
            for mask, why in checks:                      # each bad row counted once
                if (mask & ~drop).any():
                    if rows_lines is None:
                        rows_lines = _lines(block, first)[1]
                    bad.add_lines(rows_lines[mask & ~drop], why)
                drop |= mask
            if drop.any():
                keep = pa.array(~drop)
                t, item = t.filter(keep), item.filter(keep)
            yield (t["user_id"], item, t["timestamp"].to_numpy(zero_copy_only=False).astype(np.int64),
                   t["rating"].to_numpy(zero_copy_only=False).astype(np.float32))
            bar.update(len(block))


def read_reviews_jsonl(path: Path, bad: BadRows, block_bytes: int = 1 << 26, spill: Path | None = None
                       ) -> tuple[np.ndarray, pa.Array, np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """(user codes, user ids, item codes, item ids, timestamps as stored, ratings) of good rows.

    ``spill``: a directory (:func:`mrs.prep.spill.spill_dir`) where codes, timestamps and ratings
    wait until the end, with id dictionaries bounded by distinct ids (:class:`GlobalIds`); without
    it every block's codes and dictionary stay in memory (fine for small files).
    """
    if spill is not None:
        s = read_reviews_spilled(path, bad, block_bytes, spill)
        return (s.columns["user"].read(), s.user_ids, s.columns["item"].read(), s.item_ids,
                s.columns["ts"].read(), s.columns["rating"].read())
    users, items = IdBuilder(), IdBuilder()
    ts_parts, rating_parts = [], []
    for user, item, ts, rating in _review_blocks(path, bad, block_bytes):
        users.add(user)
        items.add(item)
        ts_parts.append(ts)
        rating_parts.append(rating)
    u, uid = users.finish()
    i, iid = items.finish()
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    return u, uid, i, iid, cat(ts_parts, np.int64), cat(rating_parts, np.float32)


def read_reviews_spilled(path: Path, bad: BadRows, block_bytes: int, spill: Path):
    """Good rows of ``path`` left on disk: a :class:`mrs.prep.spill.Spilled` whose ``columns``
    (``user``/``item`` int32 codes, ``ts`` int64 as stored, ``rating`` float32, in file order) are
    closed spill files, and whose id dictionaries hold one string per distinct id."""
    from mrs.prep.spill import GlobalIds, SpillColumn, Spilled

    users, items = GlobalIds(spill, "user"), GlobalIds(spill, "item")
    ts_col, rating_col = SpillColumn(spill / "ts.i64", np.int64), SpillColumn(spill / "rating.f32", np.float32)
    for user, item, ts, rating in _review_blocks(path, bad, block_bytes):
        users.add(user)
        items.add(item)
        ts_col.append(ts)
        rating_col.append(rating)
    ucol, uid = users.finish_spilled()
    icol, iid = items.finish_spilled()
    for c in (ts_col, rating_col):
        c.close()
    return Spilled(n=ts_col.n, columns={"user": ucol, "item": icol, "ts": ts_col, "rating": rating_col},
                   user_ids=uid, item_ids=iid)


RAW_SCHEMA = pa.schema([("row", pa.int64()), ("user_id", pa.string()), ("item_id", pa.string()),
                       ("ts", pa.int64()), ("rating", pa.float32())])


def read_reviews_to_parquet(path: Path, bad: BadRows, block_bytes: int, out: Path) -> int:
    """Good rows of ``path`` written as they come to the parquet file ``out`` (:data:`RAW_SCHEMA`:
    position among the good rows, raw user and item ids, timestamp as stored, rating), one row
    group per block, so memory is one block whatever the number of rows or distinct ids; ids are
    numbered later, out of core (:mod:`mrs.prep.duckpost`). Returns the number of rows."""
    import pyarrow.parquet as pq

    from mrs.prep.spill import disk_errors

    n = 0
    with disk_errors(out), pq.ParquetWriter(out, RAW_SCHEMA, compression="snappy") as w:
        for user, item, ts, rating in _review_blocks(path, bad, block_bytes):
            w.write_batch(pa.RecordBatch.from_arrays(
                [pa.array(np.arange(n, n + len(ts), dtype=np.int64)), user.combine_chunks().cast(pa.string()),
                 (item.combine_chunks() if isinstance(item, pa.ChunkedArray) else item).cast(pa.string()),
                 pa.array(ts), pa.array(rating)], schema=RAW_SCHEMA))
            n += len(ts)
    return n


def _mask(cond: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Boolean numpy mask; nulls count as True (a null id is an empty id)."""
    return np.asarray(pc.fill_null(cond, True).to_numpy(zero_copy_only=False), dtype=bool)


# the raw (still JSON-escaped) value: escapes like \u0042 or \" are decoded before matching
_ASIN_RE = re.compile(rb'"parent_asin"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _raw_id(value: bytes) -> str | None:
    """The decoded id of an ``_ASIN_RE`` match (``None``: let the full JSON parse decide)."""
    try:
        return json.loads(b'"' + value + b'"') if b"\\" in value else value.decode()
    except (ValueError, UnicodeDecodeError):
        return None


def meta_text(obj: dict) -> str:
    """Item text: title | features | description | categories | store | details (what MiniLM reads)."""
    parts: list[str] = []

    def add(v) -> None:
        if isinstance(v, str) and v.strip():
            parts.append(v.strip())

    add(obj.get("title"))
    for key in ("features", "description"):
        v = obj.get(key)
        for x in (v if isinstance(v, list) else [v]):
            add(x)
    cats = obj.get("categories")
    if isinstance(cats, list) and cats:
        add(" > ".join(str(c) for c in cats))
    if obj.get("store"):
        add(f"Store: {obj['store']}")
    det = obj.get("details")
    if isinstance(det, dict) and det:
        add("; ".join(f"{k}: {v}" for k, v in det.items()))
    return " | ".join(parts)


def meta_image_url(obj: dict) -> str | None:
    """The MAIN image (else the first), hi_res else large."""
    imgs = obj.get("images")
    if not isinstance(imgs, list) or not imgs:
        return None
    imgs = [i for i in imgs if isinstance(i, dict)]
    main = [i for i in imgs if i.get("variant") == "MAIN"] or imgs
    for img in main:
        url = img.get("hi_res") or img.get("large")
        if url:
            return str(url)
    return None


def read_meta(path: Path, wanted: set[str] | None, bad: BadRows, unmatched: dict | None = None
              ) -> dict[str, tuple[str, str | None, str | None]]:
    """``parent_asin -> (text, image url, main_category)`` for the wanted items only.

    Lines of unwanted items are skipped by a regex on the raw bytes, before any JSON parsing (ids
    compared decoded, so ``"B0\\u0031"`` matches review id ``B01``). ``unmatched`` (``{"n": 0,
    "examples": []}``) counts the meta rows no review has, keeping a few ids for the warning.
    """
    out: dict[str, tuple[str, str | None, str | None]] = {}
    with reading(path), open_text(path) as f:
        for n, line in enumerate(tqdm(f, desc=f"reading {path.name}", unit=" lines", unit_scale=True,
                                      mininterval=2.0, leave=False), 1):
            if n == 1:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue
            bad.total += 1
            m = _ASIN_RE.search(line)
            raw_id = _raw_id(m.group(1)) if m is not None else None
            if raw_id is not None and wanted is not None and raw_id not in wanted:
                _note(unmatched, raw_id)
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError
            except ValueError:
                bad.add(n, "broken JSON line")
                continue
            asin = obj.get("parent_asin")
            if not asin:
                bad.add(n, "empty parent_asin")
                continue
            if wanted is None or asin in wanted:
                out[str(asin)] = (meta_text(obj), meta_image_url(obj), obj.get("main_category"))
            else:
                _note(unmatched, str(asin))
    return out


def _note(unmatched: dict | None, asin: str, keep: int = 3) -> None:
    if unmatched is not None:
        unmatched["n"] += 1
        if len(unmatched["examples"]) < keep:
            unmatched["examples"].append(asin)
