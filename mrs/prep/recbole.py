"""``mrs prepare recbole``: RecBole's atomic files (``NAME.inter``, optional ``NAME.item``, ``NAME.user``).

Every atomic file is tab-separated with a typed header ``field:type``, e.g.
``user_id:token	item_id:token	rating:float	timestamp:float`` (any order, extra columns
allowed). Types: ``token``, ``token_seq`` (space-separated tokens), ``float``, ``float_seq``.

- ``NAME.inter``: ``user_id`` and ``item_id`` (required), ``timestamp`` (optional: unix seconds).
  A benchmark trio ``NAME.train.inter``/``NAME.valid.inter``/``NAME.test.inter`` keeps its split;
  otherwise ``split`` makes one (``leave-last-out`` by timestamp, or MMRec's seeded 8:1:1).
- ``NAME.item``: ``item_id`` plus attributes; its ``token``/``token_seq`` columns become the item
  text (``field: value`` joined by ``. ``), which ``mrs features text`` reads.
- ``NAME.user``: read for its header check; user attributes are kept in ``users.parquet``.

Bad input, as for the other sources: a header field without ``:type``, with an unknown type or
given twice, a missing ``user_id``/``item_id`` column (one-line errors naming the file and column);
malformed rows (an empty id, an unparseable, infinite or beyond-2**53 timestamp) are skipped and
counted (fail above ``max_bad_frac``). Repeated rows are dropped and counted
(:func:`mrs.prep.common.drop_repeats`).
Nothing is written on failure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from mrs.data.prepared import write_prepared
from mrs.errors import MrsError
from mrs.prep.common import (TIMESTAMP_LIMIT, BadRows, drop_repeats, factorize, input_checksum, log, nonempty,
                             require_file)
from mrs.prep.csvread import read_csv_typed, read_header
from mrs.prep.outdir import prepare_out
from mrs.prep.sources import SOURCES, Option, Source
from mrs.prep.splits import split_per_user

TYPES = {"token": pa.string(), "token_seq": pa.string(), "float": pa.float64(), "float_seq": pa.string()}


@dataclass
class RecBoleConfig:
    dir: str = ""                               # the folder with NAME.inter (required)
    out: str = ""                               # output prepared-dataset directory (required)
    name: str = ""                              # NAME; default: the folder's name
    split: Literal["leave-last-out", "mmrec"] = "leave-last-out"  # when there is no .train/.valid/.test trio
    seed: int = 2023                            # seeds split=mmrec
    dedup: bool = True                          # keep only the earliest row of a (user, item) pair (counted)
    max_bad_frac: float = 0.01                  # fail when more malformed rows than this
    checksum: Literal["auto", "sha256", "stat"] = "auto"  # input checksum (stat: size+mtime)
    overwrite: bool = False                     # replace an earlier prepared dataset at out (its features/ and images/ stay)
    discard_derived: bool = False              # with overwrite: also delete its features/, images/ and cache/


def parse_header(path: Path) -> tuple[list[str], dict[str, str]]:
    """(field names, {field: type}) of an atomic file's ``field:type`` header."""
    names, types = [], {}
    for col in read_header(path, "\t"):
        field, sep, tp = col.strip().rpartition(":")
        if not sep or not field:
            raise MrsError(f"{path}: header column {col.strip()!r} has no type (RecBole writes "
                           f"'name:token', 'name:float', 'name:token_seq' or 'name:float_seq')")
        if tp not in TYPES:
            raise MrsError(f"{path}: header column {col.strip()!r}: unknown type {tp!r} "
                           f"(one of {', '.join(TYPES)})")
        if field in types:  # pandas/pyarrow would silently keep one of the two columns
            raise MrsError(f"{path}: header field {field!r} appears twice "
                           f"({field}:{types[field]} and {col.strip()}); rename or drop one")
        names.append(field)
        types[field] = tp
    return names, types


def read_atomic(path: Path, bad: BadRows, required: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, str]]:
    """An atomic file as a DataFrame (tokens as strings, floats as float64), bad rows counted."""
    names, types = parse_header(path)
    for col in required:
        if col not in types:
            raise MrsError(f"{path}: missing required column {col!r} (found: {', '.join(names)})")
    limits = {"timestamp": TIMESTAMP_LIMIT} if types.get("timestamp") == "float" else None
    table = read_csv_typed(path, {n: TYPES[types[n]] for n in names}, bad, required=required,
                           nonempty=required, delimiter="\t", names=names, limits=limits)
    return table.to_pandas(), types


def _item_text(items: pd.DataFrame, types: dict[str, str]) -> pd.Series:
    """``field: value. field: value`` over the token and token_seq columns (not the id)."""
    cols = [c for c in items.columns if c != "item_id" and types.get(c) in ("token", "token_seq")]
    text = pd.Series([""] * len(items), index=items.index, dtype=object)
    for c in cols:
        v = items[c].fillna("").astype(str).str.strip()
        part = np.where(v != "", c + ": " + v, "")
        text = np.where((text != "") & (part != ""), text + ". " + part, text + part)
        text = pd.Series(text, index=items.index, dtype=object)
    return text


def prepare_recbole(cfg: RecBoleConfig) -> Path:
    root = Path(cfg.dir)
    if not root.is_dir():
        raise MrsError(f"recbole --dir: not a directory: {root}")
    name = cfg.name or root.name
    trio = [root / f"{name}.{s}.inter" for s in ("train", "valid", "test")]
    paths = trio if all(p.is_file() for p in trio) else [require_file(root / f"{name}.inter", "recbole --dir/--name")]
    carry = prepare_out(cfg.out, [root], cfg.overwrite, cfg.discard_derived)  # before the read
    bads, frames = {}, []
    for label, path in enumerate(paths):
        bad = BadRows(str(path), max_frac=cfg.max_bad_frac)
        df, types = read_atomic(path, bad, ("user_id", "item_id"))
        if "timestamp" in df:
            missing = df["timestamp"].isna().to_numpy()
            if missing.any():  # the timestamp orders the split: a row without one is malformed
                bad.add(None, "empty timestamp", int(missing.sum()))
                df = df[~missing]
        bad.check()
        bads[path.name] = bad.summary()
        frames.append(df.assign(__split=label if len(paths) == 3 else 0))
    df = pd.concat(frames, ignore_index=True)
    nonempty(len(df), f"reading {', '.join(str(p) for p in paths)}")
    df, repeats = drop_repeats(df, "user_id", "item_id", cfg.dedup, given_split="__split" if len(paths) == 3 else None,
                               where=str(paths[0].parent / name))

    item_path, user_path = root / f"{name}.item", root / f"{name}.user"
    item_df = user_df = None
    item_types: dict[str, str] = {}
    if item_path.is_file():
        bad = BadRows(str(item_path), max_frac=cfg.max_bad_frac)
        item_df, item_types = read_atomic(item_path, bad, ("item_id",))
        bad.check()
        bads[item_path.name] = bad.summary()
        item_df = item_df.drop_duplicates("item_id")
    if user_path.is_file():
        bad = BadRows(str(user_path), max_frac=cfg.max_bad_frac)
        user_df, _ = read_atomic(user_path, bad, ("user_id",))
        bad.check()
        bads[user_path.name] = bad.summary()
        user_df = user_df.drop_duplicates("user_id")

    user, user_ids = factorize(df["user_id"].to_numpy())
    item, item_ids = factorize(df["item_id"].to_numpy())
    if len(paths) == 3:
        split = df["__split"].to_numpy(np.int8)
    else:
        split = split_per_user(cfg.split, user, cfg.seed,
                               df["timestamp"].to_numpy() if "timestamp" in df else None)
    inter = pd.DataFrame({"user": user, "item": item, "split": split})
    if "timestamp" in df:
        inter["ts"] = df["timestamp"].to_numpy().astype(np.int64)
    items = pd.DataFrame({"item": np.arange(len(item_ids)), "item_id": item_ids.astype(str)})
    if item_df is not None:
        meta = item_df.assign(text=_item_text(item_df, item_types)).set_index("item_id")
        items["text"] = meta["text"].reindex(items["item_id"]).fillna("").to_numpy()
    else:
        items["text"] = ""
    items["image"] = pd.Series([None] * len(items), dtype=object)
    users = pd.DataFrame({"user": np.arange(len(user_ids)), "user_id": user_ids.astype(str)})
    if user_df is not None:
        attrs = user_df.set_index("user_id").reindex(users["user_id"]).reset_index(drop=True)
        users = pd.concat([users, attrs.add_prefix("attr_")], axis=1)
    inputs = [*paths, *(p for p in (item_path, user_path) if p.is_file())]
    checksum, kind = input_checksum(inputs, cfg.checksum)
    out = write_prepared(cfg.out, inter, items, users, name=name, source="recbole", modes={},
                         params=asdict(cfg), input_checksum=checksum,
                         extra={"input_checksum_kind": kind, "bad_rows": bads, **repeats,
                                "split_from": "files" if len(paths) == 3 else cfg.split,
                                "items_without_metadata": int((items["text"] == "").sum())}, carry=carry)
    log.info("%s: %d users, %d items, %d interactions -> %s", name, len(user_ids), len(item_ids), len(inter), out)
    return out


SOURCES.register("recbole", rank=5)(Source(
    help="RecBole atomic files NAME.inter (+ NAME.item, NAME.user)", config=RecBoleConfig,
    prepare=prepare_recbole, required=("dir", "out"),
    options=(Option("--dir", "dir", help="the folder with NAME.inter"),
             Option("--split", "split", choices=["leave-last-out", "mmrec"]),
             Option("--seed", "seed", type=int))))
