"""``mrs prepare amazon2014``: the Amazon 2014 5-core sequence files (SASRec/ICLRec format).

One user per line, ``user item item ...`` (integer ids, time-ordered, no timestamps), e.g.
``Sports_and_Outdoors.txt`` (35,598 users, 18,357 items, 296,337 interactions: the same 5-core set
MMRec calls ``sports``). No timestamps, so no ``ts`` column and no extra tensor modes.

Splits (see :mod:`mrs.prep.splits`):

- ``mmrec`` (default): MMRec's per-user random 8:1:1 split, seeded, so published MMRec numbers
  (BPR-MF Recall@20 0.0653 on Sports, LightGCN 0.0864, FREEDOM 0.1089) can be compared.
- ``leave-last-out``: last item of each line test, the one before valid.

Malformed lines (a user with no items, non-integer tokens) are skipped and counted; repeated
(user, item) pairs are dropped by default (MMRec's interaction files hold each pair once).

``--attributes FILE`` (S3-Rec's ``<name>_item2attributes.json``: each item's categories and brand,
numbered) gives every item its ``attributes`` (list of ints) and the tokens ``"a12 a7 a301"`` as
its ``text`` (rules in :mod:`mrs.prep.attributes`); without it ``text`` is empty and there is no
``attributes`` column. ``mrs features attributes`` turns them into a feature store.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mrs.data.prepared import write_prepared
from mrs.prep.attributes import attach_attributes, read_item_attributes
from mrs.prep.common import BOM, BadRows, factorize, input_checksum, log, nonempty, require_file, require_nonnegative
from mrs.prep.outdir import prepare_out
from mrs.prep.sources import SOURCES, Option, Source
from mrs.prep.splits import split_per_user


@dataclass
class Amazon2014Config:
    sequences: str = ""                         # `user item item ...` text file (required)
    attributes: str = ""                        # optional S3-Rec item2attributes.json: {item: [attribute, ...]}
    out: str = ""                               # output prepared-dataset directory (required)
    name: str = ""                              # dataset name; default: the file's stem
    split: Literal["mmrec", "leave-last-out"] = "mmrec"  # mmrec = MMRec's per-user random 8:1:1
    seed: int = 2023                            # seeds the mmrec shuffle
    dedup: bool = True                          # drop repeated (user, item) pairs (counted)
    max_bad_frac: float = 0.01                  # fail when more malformed lines than this
    checksum: Literal["auto", "sha256", "stat"] = "auto"  # input checksum (stat: size+mtime)
    overwrite: bool = False                     # replace an earlier prepared dataset at out (its features/ and images/ stay)
    discard_derived: bool = False              # with overwrite: also delete its features/, images/ and cache/


def read_sequences(path: Path, bad: BadRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw user ids, raw item ids, position within the user's line) as int64 arrays."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    pos: list[np.ndarray] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1:
                raw = raw.removeprefix(BOM)  # an editor's byte order mark is not part of the user id
            if not raw.strip():
                continue  # blank lines (a trailing newline) are not rows
            bad.total += 1
            try:
                ids = np.array(raw.split(), dtype=np.int64)
            except ValueError:
                bad.add(lineno, "non-integer id")
                continue
            if len(ids) < 2:
                bad.add(lineno, "user with no items")
                continue
            n = len(ids) - 1
            users.append(np.full(n, ids[0], dtype=np.int64))
            items.append(ids[1:])
            pos.append(np.arange(n, dtype=np.int64))
    bad.check()
    if not users:
        return (np.empty(0, np.int64),) * 3
    return np.concatenate(users), np.concatenate(items), np.concatenate(pos)


def prepare_amazon2014(cfg: Amazon2014Config) -> Path:
    path = require_file(cfg.sequences, "amazon2014 --sequences")
    name = cfg.name or path.stem
    attr_path = require_file(cfg.attributes, "amazon2014 --attributes") if cfg.attributes else None
    inputs = [path, *([attr_path] if attr_path else [])]
    require_nonnegative(cfg, (), "amazon2014")
    carry = prepare_out(cfg.out, inputs, cfg.overwrite, cfg.discard_derived)  # before the long read
    # a broken attribute file fails before the (long) sequence read
    attrs = read_item_attributes(attr_path) if attr_path else None
    bad = BadRows(str(path), max_frac=cfg.max_bad_frac)
    raw_u, raw_i, pos = read_sequences(path, bad)
    nonempty(len(raw_u), f"reading {path}")

    df = pd.DataFrame({"ru": raw_u, "ri": raw_i, "pos": pos})
    # A user id on two lines continues the same history (positions keep file order).
    df["pos"] = df.groupby("ru", sort=False).cumcount()
    dup = df.duplicated(["ru", "ri"]).to_numpy()
    n_dup = int(dup.sum())
    if cfg.dedup and n_dup:
        df = df[~dup]
        log.info("%s: dropped %d repeated (user, item) pairs", path, n_dup)

    user, user_ids = factorize(df["ru"].to_numpy())
    item, item_ids = factorize(df["ri"].to_numpy())
    split = split_per_user(cfg.split, user, cfg.seed, df["pos"].to_numpy())
    inter = pd.DataFrame({"user": user, "item": item, "split": split})
    items = pd.DataFrame({"item": np.arange(len(item_ids)), "item_id": item_ids.astype(str),
                          "text": "", "image": pd.Series([None] * len(item_ids), dtype=object)})
    extra = {}
    if attr_path:
        items, extra["attributes"] = attach_attributes(items, item_ids, *attrs, attr_path)
    users = pd.DataFrame({"user": np.arange(len(user_ids)), "user_id": user_ids.astype(str)})
    checksum, kind = input_checksum(inputs, cfg.checksum)
    counts = np.bincount(user)
    out = write_prepared(
        cfg.out, inter, items, users, name=name, source="amazon2014", modes={},
        params=asdict(cfg), input_checksum=checksum,
        extra={"input_checksum_kind": kind, "bad_rows": {path.name: bad.summary()},
               "repeated_pairs": n_dup, "repeated_pairs_dropped": bool(cfg.dedup and n_dup),
               "users_all_train": int((counts < 3).sum()), **extra}, carry=carry)
    log.info("%s: %d users, %d items, %d interactions -> %s", name, len(user_ids), len(item_ids),
             len(inter), out)
    return out


SOURCES.register("amazon2014", rank=2)(Source(
    help="Amazon 2014 5-core `user item item ...` text (SASRec/ICLRec)", config=Amazon2014Config,
    prepare=prepare_amazon2014, required=("sequences", "out"),
    options=(Option("--sequences", "sequences", help="the sequence text file"),
             Option("--attributes", "attributes",
                    help="optional item attributes, S3-Rec's <name>_item2attributes.json"),
             Option("--split", "split", choices=["mmrec", "leave-last-out"]),
             Option("--seed", "seed", type=int))))
