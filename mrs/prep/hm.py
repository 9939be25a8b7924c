"""``mrs prepare hm``: the H&M Personalized Fashion Recommendations (Kaggle) files.

``--raw DIR`` holds ``transactions_train.csv`` (t_dat, customer_id, article_id, price,
sales_channel_id; 31.8M rows at full size), ``articles.csv`` (25 columns ending with
detail_desc), optionally ``customers.csv`` and ``images/0XX/0XXXXXXXXX.jpg``.

- Read with pyarrow, every column typed up front (``article_id`` as int64, so the zero-padded
  ``0108775015`` and the integer ``108775015`` are the same item; ``customer_id``
  dictionary-encoded), no Python loop over rows.
- Items are the traded articles (ordered by article id); ``item_id`` is the 10-digit zero-padded id.
  Articles without an ``articles.csv`` row keep empty text and no image, and are counted.
  ``text`` joins name, type, group, colour, appearance, section, garment group and description.
  ``image`` is ``0XX/0XXXXXXXXX.jpg`` where that file exists under ``DIR/images``.
- Users are the customers with a (kept) transaction, with age, club_member_status and
  fashion_news_frequency from ``customers.csv`` when present (null for unlisted customers).
- Modes: ``context`` = sales channel; ``time`` = month of ``t_dat`` (or ISO week, or season).
- Split: temporal; the last ``test_days`` days are test, the ``valid_days`` before valid (Kaggle's
  set-up: predict the next week). Optional window: only the last ``last_weeks`` weeks.
- Repeat purchases: ``keep`` (every row; counted), ``collapse_day`` (one row per customer,
  article and day: several units bought at once), ``collapse`` (first purchase of each pair only).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mrs.data.prepared import write_prepared
from mrs.errors import MrsError
from mrs.prep.sources import SOURCES, Option, Source
from mrs.prep.common import (BadRows, categorical_mode, compact_codes, input_checksum, log, nonempty,
                             require_file, require_nonnegative, time_mode)
from mrs.prep.csvread import read_csv_typed
from mrs.prep.outdir import prepare_out
from mrs.prep.splits import split_leave_last_out, split_temporal

TEXT_FIELDS = ["prod_name", "product_type_name", "product_group_name", "colour_group_name",
               "graphical_appearance_name", "section_name", "garment_group_name", "detail_desc"]
ATTR_FIELDS = ["product_type_name", "product_group_name", "colour_group_name", "index_group_name",
               "garment_group_name"]
DAY = 86400


@dataclass
class HMConfig:
    raw: str = ""                              # directory with transactions_train.csv, articles.csv, ...
    out: str = ""                              # output prepared-dataset directory
    name: str = "hm"
    last_weeks: int = 0                        # keep only the last N weeks (0: everything)
    context: Literal["sales_channel", "none"] = "sales_channel"
    time_mode: Literal["month", "week", "season", "none"] = "month"
    split: Literal["temporal", "leave-last-out"] = "temporal"
    test_days: int = 7                         # temporal: last 7 days test (Kaggle's target week)
    valid_days: int = 7                        # temporal: the 7 days before valid
    repeats: Literal["keep", "collapse_day", "collapse"] = "keep"
    images: bool = True                        # resolve image paths under raw/images
    customer_attrs: bool = True                # add age, club status, news frequency from customers.csv
    max_bad_frac: float = 0.01                 # fail when more malformed rows than this
    checksum: Literal["auto", "sha256", "stat"] = "auto"  # auto: stat (size+mtime) above 1 GiB
    overwrite: bool = False                    # replace an earlier prepared dataset at out (its features/ and images/ stay)
    discard_derived: bool = False              # with overwrite: also delete its features/, images/ and cache/


def prepare_hm(cfg: HMConfig) -> Path:
    raw = Path(cfg.raw)
    if not raw.is_dir():
        raise MrsError(f"hm --raw: directory not found: {raw}")
    tx_path = require_file(raw / "transactions_train.csv", "hm transactions")
    art_path = require_file(raw / "articles.csv", "hm articles")
    require_nonnegative(cfg, ("last_weeks", "test_days", "valid_days"), "hm")
    carry = prepare_out(cfg.out, [raw], cfg.overwrite, cfg.discard_derived)  # before the long read
    t0 = time.perf_counter()
    bad = BadRows(str(tx_path), max_frac=cfg.max_bad_frac)
    req = ["t_dat", "customer_id", "article_id", "sales_channel_id"]
    # customer_id is read as plain strings and hashed once afterwards: measured cheaper than
    # pyarrow's per-block dictionaries plus unify_dictionaries (the strings are freed right after).
    t = read_csv_typed(tx_path, {"t_dat": pa.date32(), "customer_id": pa.string(),
                                 "article_id": pa.int64(), "sales_channel_id": pa.int8()},
                       bad, required=req, nonempty=req)
    bad.check()
    nonempty(t.num_rows, f"reading {tx_path}")
    cust_col = pc.dictionary_encode(t["customer_id"])    # one memo table over all chunks
    t = t.drop_columns(["customer_id"])
    cust_dict = cust_col.chunks[0].dictionary
    cust = np.concatenate([c.indices.to_numpy() for c in cust_col.chunks]).astype(np.int64)
    art = t["article_id"].to_numpy()
    days = t["t_dat"].cast(pa.int32()).to_numpy().astype(np.int64)       # days since epoch
    chan = t["sales_channel_id"].to_numpy()
    del t, cust_col
    log.info("hm: read %d transactions in %.1f s", len(art), time.perf_counter() - t0)
    counts: dict = {"transactions_read": int(len(art))}

    if cfg.last_weeks > 0:
        keep = days > days.max() - 7 * cfg.last_weeks
        cust, art, days, chan = cust[keep], art[keep], days[keep], chan[keep]
        nonempty(len(art), f"the time window last_weeks={cfg.last_weeks}")
    if not np.all(days[1:] >= days[:-1]):                 # Kaggle's file is date-sorted already
        o = np.argsort(days, kind="stable")
        cust, art, days, chan = cust[o], art[o], days[o], chan[o]

    # Items: traded articles in ascending id order. Hash-factorise (105K distinct ids: fast), then
    # sort only the distinct ids; np.unique would sort all 31.8M rows.
    codes, uniq = pd.factorize(art)
    order = np.argsort(uniq)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    item, art_ids = rank[codes], uniq[order]
    del codes, art

    # Repeat purchases, counted on the full stream with one sort of a (customer, article, day) key.
    n_days = int(days.max() - days.min()) + 1
    key = (cust * len(art_ids) + item) * n_days + (days - days.min())
    key.sort()
    new_day = np.concatenate(([True], key[1:] != key[:-1]))
    pair = key // n_days
    new_pair = np.concatenate(([True], pair[1:] != pair[:-1]))
    counts.update(repeat_rows=int(len(key) - new_pair.sum()), same_day_repeat_rows=int(len(key) - new_day.sum()))
    del key, pair, new_day, new_pair
    if cfg.repeats != "keep":                             # rows are in date order: first occurrence wins
        k = cust * len(art_ids) + item
        if cfg.repeats == "collapse_day":
            k = k * n_days + (days - days.min())
        keep = ~pd.Series(k).duplicated().to_numpy()
        cust, item, days, chan = cust[keep], item[keep], days[keep], chan[keep]
        del k, keep

    # Users: customers with a kept transaction, in dictionary order (first appearance in the file).
    user, used = compact_codes(cust, len(cust_dict))
    user_ids = np.asarray(cust_dict.take(pa.array(used)).to_pylist(), dtype=object)
    used_items = np.flatnonzero(np.bincount(item, minlength=len(art_ids)))
    if len(used_items) < len(art_ids):                    # cannot happen today; stays exact if it does
        item = np.searchsorted(used_items, item)
        art_ids = art_ids[used_items]
    ts = days * DAY

    modes, mode_cols = {}, {}
    if cfg.context == "sales_channel":
        mode_cols["context"], modes["context"] = categorical_mode(chan, prefix="sales_channel_")
    if cfg.time_mode != "none":
        mode_cols["time"], modes["time"] = time_mode(ts, cfg.time_mode)
    if cfg.split == "temporal":
        split = split_temporal(ts, cfg.test_days, cfg.valid_days)
    else:
        split = split_leave_last_out(user, np.arange(len(user)))
    inter = pd.DataFrame({"user": user.astype(np.int32), "item": item.astype(np.int32), "ts": ts,
                          **mode_cols, "split": split})

    log.info("hm: ids, modes and split done at %.1f s", time.perf_counter() - t0)
    items, item_counts = build_items(art_path, art_ids, raw / "images" if cfg.images else None,
                                     cfg.max_bad_frac)
    users = pd.DataFrame({"user": np.arange(len(user_ids)), "user_id": user_ids})
    if cfg.customer_attrs and (raw / "customers.csv").is_file():
        users, missing = add_customer_attrs(users, raw / "customers.csv", cfg.max_bad_frac)
        item_counts["n_users_without_customer_row"] = missing
    paths = [tx_path, art_path] + ([raw / "customers.csv"] if (raw / "customers.csv").is_file() else [])
    checksum, kind = input_checksum(paths, cfg.checksum)
    image_root = (raw / "images").resolve() if cfg.images and (raw / "images").is_dir() else None
    out = write_prepared(
        cfg.out, inter, items, users, name=cfg.name, source="hm", modes=modes, params=asdict(cfg),
        input_checksum=checksum,
        extra={"input_checksum_kind": kind, "image_root": str(image_root) if image_root else None,
               "bad_rows": {tx_path.name: bad.summary()}, **counts, **item_counts}, carry=carry)
    log.info("hm: %d users, %d items, %d interactions -> %s (%.1f s)", len(users), len(items), len(inter), out,
             time.perf_counter() - t0)
    return out


def build_items(art_path: Path, art_ids: np.ndarray, image_dir: Path | None,
                max_bad_frac: float = 0.01) -> tuple[pd.DataFrame, dict]:
    """items.parquet rows for the traded ``art_ids`` (int64, ascending) and their counts.

    A skipped article row only costs that article its text (it is kept, like an unlisted one).
    """
    bad = BadRows(str(art_path), max_frac=max_bad_frac)
    fields = list(dict.fromkeys(TEXT_FIELDS + ATTR_FIELDS))
    a = read_csv_typed(art_path, {"article_id": pa.int64(), **{f: pa.string() for f in fields}},
                       bad, required=["article_id"], nonempty=["article_id"],
                       newlines_in_values=True).to_pandas()   # detail_desc is free text
    bad.check()
    a = a.drop_duplicates("article_id").set_index("article_id")
    has_meta = np.isin(art_ids, a.index.to_numpy())
    a = a.reindex(art_ids)
    # ~105K items, not 31.8M rows: a comprehension over items is clear and fast enough here.
    cols = [a[f].fillna("").astype(str).str.strip().tolist() for f in TEXT_FIELDS if f in a]
    text = pd.Series([" | ".join(v for v in row if v) for row in zip(*cols)] if cols else [""] * len(a),
                     dtype=object)
    item_id = pd.Series(art_ids.astype(str)).str.zfill(10)
    image = pd.Series([None] * len(art_ids), dtype=object)
    if image_dir is not None and image_dir.is_dir():
        present = _existing_images(image_dir)
        rel = item_id.str.slice(0, 3) + "/" + item_id + ".jpg"
        image = rel.where(rel.isin(present), None)
    items = pd.DataFrame({"item": np.arange(len(art_ids)), "item_id": item_id, "text": text.to_numpy(),
                          "image": image.to_numpy()})
    for f in ATTR_FIELDS:
        items[f] = a[f].to_numpy() if f in a else None
    items["has_meta"] = has_meta
    counts = {"n_items_without_article_row": int((~has_meta).sum()),
              "n_items_with_image": int(pd.notna(image).sum()),
              "articles_bad_rows": bad.summary()}
    return items, counts


def add_customer_attrs(users: pd.DataFrame, path: Path, max_bad_frac: float) -> tuple[pd.DataFrame, int]:
    """``users`` with ``age``, ``club_member_status``, ``fashion_news_frequency`` (null where the
    customer has no customers.csv row); returns it and the number of such customers."""
    bad = BadRows(str(path), max_frac=max_bad_frac)
    c = read_csv_typed(path, {"customer_id": pa.string(), "age": pa.float32(), "club_member_status": pa.string(),
                              "fashion_news_frequency": pa.string()}, bad, required=["customer_id"],
                       nonempty=["customer_id"])
    bad.check()
    pos = pc.index_in(pa.array(users["user_id"].to_numpy(), pa.string()), value_set=c["customer_id"])
    pos = pos.to_numpy(zero_copy_only=False)
    found = ~np.isnan(pos.astype(np.float64))
    idx = np.where(found, np.nan_to_num(pos.astype(np.float64)), 0).astype(np.int64)
    users = users.copy()
    for col in ("age", "club_member_status", "fashion_news_frequency"):
        if col in c.column_names:
            v = c[col].take(pa.array(idx)).to_pandas()
            users[col] = v.where(found)
    return users, int((~found).sum())


def _existing_images(image_dir: Path) -> set[str]:
    """Relative paths ``0XX/0XXXXXXXXX.jpg`` present (one scandir per folder, not one stat per item)."""
    out = set()
    with os.scandir(image_dir) as top:
        for d in top:
            if d.is_dir():
                with os.scandir(d.path) as inner:
                    out.update(f"{d.name}/{e.name}" for e in inner if e.name.endswith(".jpg"))
    return out


SOURCES.register("hm", rank=0)(Source(
    help="H&M Kaggle csv files (+ images/)", config=HMConfig, prepare=prepare_hm, required=("raw", "out"),
    options=(Option("--raw", "raw", help="directory holding transactions_train.csv, articles.csv, ..."),
             Option("--last-weeks", "last_weeks", type=int, help="keep only the last N weeks"),
             Option("--time-mode", "time_mode", choices=["month", "week", "season", "none"],
                    help="time mode from t_dat (default month)"),
             Option("--repeats", "repeats", choices=["keep", "collapse_day", "collapse"],
                    help="repeat purchases: keep (default), one per day, or first only"))))
