"""``mrs prepare mmrec``: the MMRec toolbox's dataset files (enoche/MMRec ``data/<name>/``).

- ``<name>.inter``: tab-separated, header ``userID itemID rating timestamp x_label`` (any order,
  extra columns ignored); ids already 0-based; ``x_label`` 0/1/2 = train/valid/test.
- ``image_feat.npy`` (I x 4096 float32) and ``text_feat.npy`` (I x 384): row = itemID. Either may
  be absent.

MMRec's split is kept exactly (``split: x_label``, the default), so FREEDOM and the baselines can
be compared with the published Recall@20 (Baby .0992, Sports .1089 for FREEDOM) under
``eval.mask_valid_at_test=false`` (MMRec masks only train items at test). Without ``x_label``,
``--split mmrec`` (MMRec's own seeded 8:1:1 procedure) or ``--split leave-last-out`` (by
timestamp) makes one. Features become stores in our HDF5 format, ``features/image-mmrec.h5``
and ``features/text-mmrec.h5`` (float32, rows as given: MMRec's features are not normalised).

Bad input (one-line errors naming file and column): no ``x_label`` with ``split: x_label``;
a feature file whose row count differs from the item count (``max itemID + 1``); NaN or inf
in a feature file, or one that is not of a real number type (strings, complex); a missing
``userID``/``itemID`` column; an id at or beyond the row count of the file (or of a feature file,
if larger), which cannot be dense (the error names its line). Malformed rows (infinite or
beyond-2**53 timestamps included) are skipped and counted (``max_bad_frac``). A prepare that
fails leaves no output directory.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from mrs.data.prepared import items_checksum, write_prepared
from mrs.errors import MrsError
from mrs.prep.common import TIMESTAMP_LIMIT, BadRows, drop_repeats, input_checksum, log, nonempty, require_file
from mrs.prep.csvread import read_csv_typed, read_header
from mrs.prep.outdir import prepare_out
from mrs.prep.sources import SOURCES, Option, Source
from mrs.prep.splits import split_per_user

FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}


@dataclass
class MMRecConfig:
    dir: str = ""                               # the MMRec dataset folder (required)
    out: str = ""                               # output prepared-dataset directory (required)
    name: str = ""                              # <name>.inter; default: the folder's name
    split: Literal["x_label", "mmrec", "leave-last-out"] = "x_label"  # x_label keeps MMRec's split
    seed: int = 2023                            # seeds split=mmrec
    features: bool = True                       # convert image_feat.npy / text_feat.npy
    dedup: bool = True                          # keep only the earliest row of a (user, item) pair (within an x_label split)
    max_bad_frac: float = 0.01                  # fail when more malformed rows than this
    checksum: Literal["auto", "sha256", "stat"] = "auto"  # input checksum (stat: size+mtime)
    overwrite: bool = False                     # replace an earlier prepared dataset at out (its features/ and images/ stay)
    discard_derived: bool = False              # with overwrite: also delete its features/, images/ and cache/


def check_dense(df: pd.DataFrame, path: Path, limit: int) -> None:
    """MMRec's ids are dense and 0-based: ``n = max id + 1`` rows are allocated for them. An id at
    or beyond ``limit`` (the row count of the file, or of a feature file if larger) cannot be
    dense; one stray ``20000000`` would otherwise make 20M items. A one-line error naming its line."""
    for col in ("userID", "itemID"):
        v = df[col].to_numpy()
        far = np.flatnonzero(v >= limit)
        if len(far):
            j = far[np.argmax(v[far])]
            raise MrsError(f"{path}:{int(df['__line__'].iloc[j])}: {col} {int(v[j])} is far beyond the "
                           f"{limit} ids a dense 0-based file of {len(df)} rows can have ({len(far)} such "
                           f"rows); MMRec ids must be 0..n-1: fix or drop the row")


def npy_rows(path: Path) -> int:
    """Rows of an ``.npy`` file from its header (0 when unreadable: :func:`check_feature_file` says why)."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return 0
    return int(x.shape[0]) if x.ndim else 0


def check_feature_file(path: Path, n_items: int) -> np.ndarray:
    """The ``(n_items, d)`` float32 array of an ``.npy`` feature file (memory-mapped), checked:
    2-D, one row per item, finite."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise MrsError(f"{path}: not a readable .npy array ({str(e).splitlines()[0]})") from None
    if x.dtype.kind not in "fiu":  # strings would fail the float cast; complex would lose its imaginary part
        raise MrsError(f"{path}: dtype {x.dtype} is not a real number type (features must be float or int)")
    if x.ndim != 2 or x.shape[0] != n_items:
        raise MrsError(f"{path}: {x.shape[0] if x.ndim else 0} feature rows for {n_items} items "
                       f"(shape {tuple(x.shape)}; row = itemID, so rows must equal max itemID + 1)")
    for s in range(0, n_items, 65536):  # in blocks: a 4096-d file need not be read twice at once
        block = np.asarray(x[s:s + 65536], dtype=np.float32)
        bad = ~np.isfinite(block)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise MrsError(f"{path}: NaN or inf at row {s + r} (itemID {s + r}), column {c}")
    return x


def write_feature_stores(out: Path, arrays: dict[str, np.ndarray], item_ids: list[str], source: str) -> None:
    """One HDF5 store per modality in ``out/features`` (``<modality>-<source>.h5``, float32)."""
    from mrs.features.store import write_store

    ck = items_checksum(pd.Series(item_ids))
    for modality, x in arrays.items():
        write_store(out / "features" / f"{modality}-{source}.h5", item_ids, np.asarray(x, dtype=np.float32),
                    np.ones(len(item_ids), dtype=bool),
                    {"modality": modality, "encoder": source, "encoder_version": "given",
                     "normalisation": "none", "items_checksum": ck}, dtype="float32")


def prepare_mmrec(cfg: MMRecConfig) -> Path:
    root = Path(cfg.dir)
    if not root.is_dir():
        raise MrsError(f"mmrec --dir: not a directory: {root}")
    name = cfg.name or root.name
    path = require_file(root / f"{name}.inter", "mmrec --dir/--name")
    carry = prepare_out(cfg.out, [root], cfg.overwrite, cfg.discard_derived)  # before the read
    header = read_header(path, "\t")
    if cfg.split == "x_label" and "x_label" not in header:
        raise MrsError(f"{path}: no 'x_label' column (MMRec's split); pass --split mmrec or "
                       f"--split leave-last-out to make one")
    bad = BadRows(str(path), max_frac=cfg.max_bad_frac)
    types = {"userID": pa.int64(), "itemID": pa.int64(), "timestamp": pa.float64(), "x_label": pa.int64()}
    table = read_csv_typed(path, types, bad, required=("userID", "itemID"),
                           nonempty=[c for c in types if c in header], delimiter="\t",
                           limits={"timestamp": TIMESTAMP_LIMIT}, line_numbers=True)
    df = table.to_pandas()
    for col in ("userID", "itemID"):
        neg = df[col].to_numpy() < 0
        if neg.any():
            bad.add(None, f"negative {col}", int(neg.sum()))
            df = df[~neg]
    if cfg.split == "x_label":
        off = ~df["x_label"].isin([0, 1, 2]).to_numpy()
        if off.any():
            bad.add(None, "x_label not 0/1/2", int(off.sum()))
            df = df[~off]
    bad.check()
    nonempty(len(df), f"reading {path}")
    df, repeats = drop_repeats(df, "userID", "itemID", cfg.dedup,
                               given_split="x_label" if cfg.split == "x_label" else None, where=str(path))
    feature_rows = [npy_rows(root / f) for f in FEATURE_FILES.values() if cfg.features and (root / f).is_file()]
    check_dense(df, path, max([len(df), *feature_rows]))
    user = df["userID"].to_numpy(np.int64)
    item = df["itemID"].to_numpy(np.int64)
    n_users, n_items = int(user.max()) + 1, int(item.max()) + 1
    arrays = {}
    if cfg.features:  # checked before anything is written
        for modality, fname in FEATURE_FILES.items():
            if (root / fname).is_file():
                arrays[modality] = check_feature_file(root / fname, n_items)
        n_items = max(n_items, *(x.shape[0] for x in arrays.values())) if arrays else n_items
    if cfg.split == "x_label":
        split = df["x_label"].to_numpy(np.int8)
    else:
        split = split_per_user(cfg.split, user, cfg.seed,
                               df["timestamp"].to_numpy() if "timestamp" in df else None)
    inter = pd.DataFrame({"user": user, "item": item, "split": split})
    if "timestamp" in df:
        inter["ts"] = df["timestamp"].to_numpy().astype(np.int64)
    ids = [str(i) for i in range(n_items)]  # MMRec's ids are the prepared ids
    items = pd.DataFrame({"item": np.arange(n_items), "item_id": ids, "text": "",
                          "image": pd.Series([None] * n_items, dtype=object)})
    users = pd.DataFrame({"user": np.arange(n_users), "user_id": [str(u) for u in range(n_users)]})
    inputs = [path, *(root / FEATURE_FILES[m] for m in arrays)]
    checksum, kind = input_checksum(inputs, cfg.checksum)
    out = write_prepared(cfg.out, inter, items, users, name=name, source="mmrec", modes={},
                         params=asdict(cfg), input_checksum=checksum,
                         extra={"input_checksum_kind": kind, "bad_rows": {path.name: bad.summary()}, **repeats,
                                "features": {m: FEATURE_FILES[m] for m in arrays}}, carry=carry)
    try:
        write_feature_stores(out, arrays, ids, "mmrec")
    except BaseException:
        if not carry:  # a new directory: no half-prepared dataset; never delete carried user files
            shutil.rmtree(out, ignore_errors=True)
        raise
    log.info("%s: %d users, %d items, %d interactions, features %s -> %s", name, n_users, n_items,
             len(inter), sorted(arrays) or "none", out)
    return out


SOURCES.register("mmrec", rank=4)(Source(
    help="MMRec's <name>.inter (x_label split) + image_feat.npy / text_feat.npy", config=MMRecConfig,
    prepare=prepare_mmrec, required=("dir", "out"),
    options=(Option("--dir", "dir", help="the MMRec dataset folder"),
             Option("--split", "split", choices=["x_label", "mmrec", "leave-last-out"]),
             Option("--seed", "seed", type=int))))
