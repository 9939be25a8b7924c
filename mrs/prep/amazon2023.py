"""``mrs prepare amazon2023``: Amazon Reviews 2023 (McAuley lab), raw or official benchmark files.

Reviews come as

- raw ``<Category>.jsonl`` / ``.jsonl.gz`` (rating, title, text, images, asin, parent_asin, user_id,
  timestamp in ms, helpful_vote, verified_purchase): streamed in chunks (:mod:`mrs.prep.jsonl`),
  so Clothing_Shoes_and_Jewelry's 66M lines are never held whole; or
- an official benchmark csv ``user_id,parent_asin,rating,timestamp[,history]`` (0core/5core
  rating_only, last_out, timestamp). Given ``X.train.csv`` whose ``X.valid.csv`` and ``X.test.csv``
  sit beside it (or ``--valid``/``--test``), that split is kept as is (``split: official``).

Items are ``parent_asin``s. With ``--meta meta_<Category>.jsonl(.gz)``, item text joins title,
features, description, categories, store and details; the image URL (MAIN image, hi_res else
large) goes to items ``image_url`` for ``mrs download-images``, which fills ``image``.
Modes come from the timestamp (UTC): context weekday/weekend, time month (configurable).
Splits for non-official input: leave-last-out by time (default), temporal, or mmrec.

Memory (``engine``): with ``duckdb`` (default) the good rows are streamed in blocks to a parquet
spill file (raw ids, timestamps, ratings; jsonl: :mod:`mrs.prep.jsonl`, a benchmark csv:
:mod:`mrs.prep.csvstream`) and dedup, k-core, compact codes, the split, the time modes and the
interactions parquet are done out of core by DuckDB under ``memory_mb``
(:mod:`mrs.prep.duckpost`), so peak RSS is bounded by ``memory_mb`` plus the distinct ids, not
by rows. ``numpy`` does the same steps in memory (identical result; the official trio always).
"""
from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from mrs.data.prepared import write_prepared, write_prepared_stream
from mrs.errors import MrsError
from mrs.prep.sources import SOURCES, Option, Source
from mrs.prep.common import (BadRows, compact_codes, input_checksum, kcore, log, nonempty, require_file,
                             require_nonnegative, time_mode, timestamps_to_seconds)
from mrs.prep.csvread import read_csv_typed
from mrs.prep.csvstream import read_csv_to_parquet
from mrs.prep.jsonl import IdBuilder, read_meta, read_reviews_jsonl, read_reviews_to_parquet
from mrs.prep.outdir import prepare_out
from mrs.prep.spill import spill_dir
from mrs.prep.splits import split_leave_last_out, split_mmrec, split_temporal


@dataclass
class Amazon2023Config:
    reviews: str = ""                          # reviews .jsonl(.gz) or benchmark .csv (a .train.csv keeps its trio)
    meta: str = ""                             # meta_<Category>.jsonl(.gz) (optional: item text, image URLs)
    out: str = ""                              # output prepared-dataset directory
    name: str = ""                             # default: the reviews file's stem
    valid: str = ""                            # explicit official valid csv (with test; reviews = train)
    test: str = ""                             # explicit official test csv
    split: Literal["auto", "official", "leave-last-out", "temporal", "mmrec"] = "auto"  # auto: official if a trio
    kcore: int = 0                             # iterative k-core on users and items (0/1: none)
    dedup: bool = True                         # keep only the first review of a (user, item) pair
    context_mode: Literal["weekday_weekend", "weekday", "hour", "none"] = "weekday_weekend"
    time_mode: Literal["month", "season", "week", "none"] = "month"
    timestamp_unit: Literal["auto", "ms", "s"] = "auto"  # Amazon 2023 uses ms; auto also detects seconds
    test_days: int = 30                        # temporal split only
    valid_days: int = 30                       # temporal split only
    seed: int = 2023                           # mmrec split only
    block_bytes: int = 1 << 26                 # jsonl/csv bytes parsed per block (bounds memory on 66M-line files)
    engine: Literal["duckdb", "numpy"] = "duckdb"  # jsonl or csv: dedup/k-core/split out of core in DuckDB
                                               # (mrs.prep.duckpost), or in numpy (memory grows with rows)
    memory_mb: int = 2048                      # engine duckdb: its memory_limit (beyond: temp files in the spill dir)
    threads: int = 0                           # engine duckdb: its threads (0: DuckDB's default, one per core)
    spill: bool = True                         # engine numpy: codes/timestamps wait on disk beside --out, id
                                               # dictionaries bounded by distinct ids (false: all in memory)
    max_bad_frac: float = 0.01                 # fail when more malformed rows than this
    checksum: Literal["auto", "sha256", "stat"] = "auto"
    overwrite: bool = False                    # replace an earlier prepared dataset at out (its features/ and images/ stay)
    discard_derived: bool = False              # with overwrite: also delete its features/, images/ and cache/


def official_trio(cfg: Amazon2023Config, reviews: Path) -> list[Path] | None:
    """[train, valid, test] when an official split is given (explicitly or as siblings), else None."""
    if cfg.valid or cfg.test:
        return [reviews, require_file(cfg.valid, "amazon2023 --valid"), require_file(cfg.test, "amazon2023 --test")]
    m = re.fullmatch(r"(.*)\.train\.csv(\.gz)?", reviews.name)
    if m is None:
        return None
    sib = [reviews.with_name(f"{m.group(1)}.{s}.csv{m.group(2) or ''}") for s in ("valid", "test")]
    for p in sib:
        require_file(p, f"official split sibling of {reviews.name}")
    return [reviews, *sib]


def _read_csvs(paths: list[Path], bads: list[BadRows]):
    users, items = IdBuilder(), IdBuilder()
    ts, rating, label = [], [], []
    d = pa.dictionary(pa.int32(), pa.string())
    for k, (p, bad) in enumerate(zip(paths, bads)):
        req = ["user_id", "parent_asin", "timestamp"]
        t = read_csv_typed(p, {"user_id": d, "parent_asin": d, "rating": pa.float32(), "timestamp": pa.int64()},
                           bad, required=req, nonempty=req)
        bad.check()
        # a row dropped for an empty/unparseable value leaves its ids in pyarrow's dictionaries:
        # then decode, so ids are numbered by first appearance among the kept rows (as jsonl's)
        ucol, icol = t["user_id"], t["parent_asin"]
        if bad.bad:
            ucol, icol = ucol.cast(pa.string()), icol.cast(pa.string())
        users.add(ucol)
        items.add(icol)
        ts.append(t["timestamp"].to_numpy())
        rating.append(t["rating"].to_numpy() if "rating" in t.column_names else np.full(t.num_rows, np.nan, np.float32))
        label.append(np.full(t.num_rows, k, dtype=np.int8))
    u, uid = users.finish()
    i, iid = items.finish()
    return u, uid, i, iid, np.concatenate(ts), np.concatenate(rating).astype(np.float32), np.concatenate(label)


def prepare_amazon2023(cfg: Amazon2023Config) -> Path:
    reviews = require_file(cfg.reviews, "amazon2023 --reviews")
    trio = official_trio(cfg, reviews)
    split_kind = cfg.split if cfg.split != "auto" else ("official" if trio else "leave-last-out")
    if split_kind == "official" and not trio:
        raise MrsError(f"split 'official' needs X.train.csv with X.valid.csv and X.test.csv beside it "
                       f"(or --valid/--test); got {reviews}")
    if split_kind == "official" and cfg.kcore > 1:
        raise MrsError("kcore: the official split is kept as is; k-core filtering would change it (use kcore=0)")
    paths = trio if split_kind == "official" else [reviews]
    # every input and --out are checked before the (possibly hour-long) read of the reviews
    meta_path = require_file(cfg.meta, "amazon2023 --meta") if cfg.meta else None
    require_nonnegative(cfg, ("kcore", "test_days", "valid_days"), "amazon2023")
    for key in ("block_bytes", "memory_mb"):
        if getattr(cfg, key) < 1:
            raise MrsError(f"amazon2023: config key {key!r} must be >= 1, got {getattr(cfg, key)}")
    carry = prepare_out(cfg.out, [*paths, meta_path], cfg.overwrite, cfg.discard_derived)
    bads = [BadRows(str(p), max_frac=cfg.max_bad_frac) for p in paths]
    is_csv = re.search(r"\.csv(\.gz)?$", reviews.name) is not None
    if cfg.engine == "duckdb" and split_kind != "official":   # the official trio is kept as is: numpy
        return _prepare_duckdb(cfg, reviews, split_kind, bads[0], meta_path, carry, is_csv)
    if is_csv:
        u, uid, i, iid, ts, rating, label = _read_csvs(paths, bads)
    else:
        with spill_dir(cfg.out) if cfg.spill else contextlib.nullcontext() as sp:
            u, uid, i, iid, ts, rating = read_reviews_jsonl(reviews, bads[0], cfg.block_bytes, spill=sp)
        bads[0].check()
        label = None
    nonempty(len(u), f"reading {reviews}")
    counts: dict = {"reviews_read": int(len(u))}
    ts, counts["timestamp_unit"] = timestamps_to_seconds(ts, cfg.timestamp_unit, str(reviews))

    keep = np.ones(len(u), dtype=bool)
    if cfg.dedup and split_kind != "official":
        order = np.argsort(ts, kind="stable")             # the first review of a pair survives
        dup = np.zeros(len(u), dtype=bool)
        dup[order] = pd.Series(u[order].astype(np.int64) * (int(i.max()) + 1) + i[order]).duplicated().to_numpy()
        counts["repeated_pairs_dropped"] = int(dup.sum())
        keep &= ~dup
        del order, dup
        nonempty(int(keep.sum()), "dedup")
    if cfg.kcore > 1:
        keep = _kcore_masked(u, i, keep, cfg.kcore)
        nonempty(int(keep.sum()), f"the k-core filter (kcore={cfg.kcore})")
    # Memory: every per-row array below is the smallest dtype that holds it, and each is
    # dropped as soon as the next exists (66M rows: each byte per row is 66 MB).
    if not keep.all():
        u, i, ts, rating = u[keep], i[keep], ts[keep], rating[keep]
        label = label[keep] if label is not None else None
    del keep
    u, used_u = compact_codes(u, len(uid))                # O(N), first-appearance order kept
    u = u.astype(np.int32)
    i, used_i = compact_codes(i, len(iid))
    i = i.astype(np.int32)
    user_ids = uid.take(pa.array(used_u)).to_numpy(zero_copy_only=False)   # object array, no list
    item_ids = iid.take(pa.array(used_i)).to_numpy(zero_copy_only=False)
    del uid, iid, used_u, used_i

    if split_kind == "official":
        split = label
    elif split_kind == "leave-last-out":
        split = split_leave_last_out(u, ts)
    elif split_kind == "temporal":
        split = split_temporal(ts, cfg.test_days, cfg.valid_days)
    else:
        split = split_mmrec(u, cfg.seed)
    modes, cols = {}, {}
    if cfg.context_mode != "none":
        cols["context"], modes["context"] = time_mode(ts, cfg.context_mode)
    if cfg.time_mode != "none":
        cols["time"], modes["time"] = time_mode(ts, cfg.time_mode)
    inter = pd.DataFrame({"user": u, "item": i, "ts": ts, **cols, "split": split.astype(np.int8),
                          "rating": rating}, copy=False)
    del u, i, ts, cols, split, rating, label

    return _write(cfg, reviews, split_kind, paths, bads, meta_path, carry, counts, modes, item_ids, inter,
                  pd.DataFrame({"user": np.arange(len(user_ids)), "user_id": user_ids}))


def _prepare_duckdb(cfg: Amazon2023Config, reviews: Path, split_kind: str, bad: BadRows,
                    meta_path: Path | None, carry: list[str], is_csv: bool) -> Path:
    """Reviews (jsonl or a benchmark csv) streamed in blocks to a parquet spill file, then every
    per-row step in DuckDB (:mod:`mrs.prep.duckpost`)."""
    import duckdb

    from mrs.prep.duckpost import connect, load_parquet, postprocess

    with spill_dir(cfg.out) as sp:
        con = None
        try:
            # a benchmark csv or the jsonl: good rows streamed in blocks to the same raw parquet
            read = read_csv_to_parquet if is_csv else read_reviews_to_parquet
            n = read(reviews, bad, cfg.block_bytes, sp / "reviews.parquet")
            bad.check()
            nonempty(n, f"reading {reviews}")
            con = connect(sp, cfg.memory_mb, cfg.threads)
            load_parquet(con, sp / "reviews.parquet")
            res = postprocess(con, sp, n, split=split_kind, dedup=cfg.dedup, kcore=cfg.kcore, unit=cfg.timestamp_unit,
                              context_mode=cfg.context_mode, time_mode_kind=cfg.time_mode,
                              test_days=cfg.test_days, valid_days=cfg.valid_days, seed=cfg.seed, where=str(reviews))
        except duckdb.Error as e:     # out of memory, a full disk: one line naming where it spilled
            raise MrsError(f"{sp}: out-of-core post-processing failed (memory_mb={cfg.memory_mb}; a full "
                           f"disk there also ends here): {str(e).splitlines()[0]}") from None
        finally:
            if con is not None:
                con.close()           # its buffer pool goes before the item strings below are used
        return _write(cfg, reviews, split_kind, [reviews], [bad], meta_path, carry, res.counts, res.modes,
                      res.item_ids, res.write, res.users)


def _write(cfg: Amazon2023Config, reviews: Path, split_kind: str, paths: list[Path], bads: list[BadRows],
           meta_path: Path | None, carry: list[str], counts: dict, modes: dict, item_ids: np.ndarray,
           inter, users) -> Path:
    """Items (with --meta), users and the interactions (a frame, or a function that streams them)."""
    items = pd.DataFrame({"item": np.arange(len(item_ids)), "item_id": item_ids, "text": "",
                          "image": pd.Series([None] * len(item_ids), dtype=object),
                          "image_url": pd.Series([None] * len(item_ids), dtype=object),
                          "main_category": pd.Series([None] * len(item_ids), dtype=object)})
    inputs = list(paths)
    if meta_path is not None:
        mbad = BadRows(str(meta_path), max_frac=cfg.max_bad_frac)
        unmatched: dict = {"n": 0, "examples": []}
        meta = read_meta(meta_path, set(item_ids.tolist()), mbad, unmatched)
        mbad.check()
        rows = [meta.get(a) for a in item_ids]
        _warn_unmatched(meta_path, item_ids, rows, unmatched)
        items["text"] = [r[0] if r else "" for r in rows]
        items["image_url"] = [r[1] if r else None for r in rows]
        items["main_category"] = [r[2] if r else None for r in rows]
        counts["meta_bad_rows"] = mbad.summary()
        inputs.append(meta_path)
        counts["n_items_without_meta"] = int(sum(r is None for r in rows))
    else:
        counts["n_items_without_meta"] = len(item_ids)
    counts["n_items_with_image_url"] = int(items["image_url"].notna().sum())
    checksum, kind = input_checksum(inputs, cfg.checksum)
    kw = dict(name=cfg.name or re.sub(r"(\.train)?\.(csv|jsonl|json)(\.gz)?$", "", reviews.name),
              source="amazon2023", modes=modes, params={**asdict(cfg), "split_used": split_kind},
              input_checksum=checksum,
              extra={"input_checksum_kind": kind, "image_root": "images",  # relative to the dataset dir
                     "bad_rows": {Path(b.path).name: b.summary() for b in bads}, **counts}, carry=carry)
    if isinstance(inter, pd.DataFrame):
        out = write_prepared(cfg.out, inter, items, users, **kw)
        n = len(inter)
    else:
        n_users = None if isinstance(users, Path) else len(users)    # a parquet file is moved in
        out = write_prepared_stream(cfg.out, inter, items, users, **kw)
        n = "streamed"
        users = range(n_users if n_users is not None else json.loads((out / "dataset.json").read_text())["n_users"])
    log.info("amazon2023: %d users, %d items, %s interactions -> %s", len(users), len(items), n, out)
    return out


def _warn_unmatched(meta_path: Path, item_ids: np.ndarray, rows: list, unmatched: dict) -> None:
    """Items without a meta row get no text and no image URL: say so, with examples of both sides
    (ids differing in case, whitespace or encoding show up side by side)."""
    missing = [a for a, r in zip(item_ids, rows) if r is None]
    if not missing:
        return
    log.warning("%s: %d of %d review items have no meta row, so no text or image URL (e.g. %s); "
                "%d meta rows match no review item (e.g. %s)", meta_path, len(missing), len(item_ids),
                ", ".join(map(repr, missing[:3])), unmatched["n"], ", ".join(map(repr, unmatched["examples"])) or "-")


def _kcore_masked(u: np.ndarray, i: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """k-core over the rows still kept; returns the new keep mask over all rows."""
    idx = np.flatnonzero(keep)
    out = np.zeros(len(u), dtype=bool)
    out[idx[kcore(u[idx], i[idx], k)]] = True
    return out


SOURCES.register("amazon2023", rank=1)(Source(
    help="Amazon Reviews 2023 jsonl(.gz) or benchmark csv", config=Amazon2023Config,
    prepare=prepare_amazon2023, required=("reviews", "out"),
    options=(Option("--reviews", "reviews",
                    help="reviews .jsonl/.jsonl.gz or benchmark .csv (a .train.csv keeps its trio)"),
             Option("--meta", "meta", help="meta_<Category>.jsonl(.gz)"),
             Option("--valid", "valid", help="explicit valid csv of an official split"),
             Option("--test", "test", help="explicit test csv of an official split"),
             Option("--kcore", "kcore", type=int, help="k-core filter (0/1: none)"),
             Option("--split", "split", choices=["auto", "official", "leave-last-out", "temporal", "mmrec"]),
             Option("--timestamp-unit", "timestamp_unit", choices=["auto", "ms", "s"],
                    help="unit of 'timestamp' (default auto: ms, or s when every value is below 1e11)"))))
