"""The one reader later phases use: a feature store, aligned with the prepared item index.

    feats, present = load_features("data/hm", "image-efficientnet_lite0")   # (I, d) f32, (I,) bool

Rows of items whose input was missing are filled with the mean of the present rows (as MMRec and
LATTICE do) or with zeros. A store made for another item list (other ids or another order) is
refused: its ``items_checksum`` must equal the dataset's.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np

from mrs.errors import MrsError
from mrs.features.store import SUFFIX, iter_stores, read_meta, read_store

Fill = Literal["mean", "zeros"]


def dataset_items_checksum(dataset_dir: str | os.PathLike) -> str:
    """The prepared dataset's ``items_checksum`` (computed from items.parquet if dataset.json lacks it)."""
    root = Path(dataset_dir)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise MrsError(f"{meta_path}: missing (is {root} a prepared dataset?)")
    meta = json.loads(meta_path.read_text())
    if meta.get("items_checksum"):
        return str(meta["items_checksum"])
    import pandas as pd

    from mrs.data.prepared import items_checksum

    return items_checksum(pd.read_parquet(root / "items.parquet", columns=["item_id"])["item_id"])


def resolve_store(dataset_dir: str | os.PathLike, name: str) -> Path:
    """``name`` is a store name (``text-minilm``), a file name (``text-minilm.lmdb``) or a path."""
    p = Path(name)
    if p.suffix in SUFFIX.values() and p.exists():
        return p
    fdir = Path(dataset_dir) / "features"
    if p.suffix in SUFFIX.values():
        cands = [fdir / p.name]
    else:
        cands = [fdir / f"{name}{s}" for s in SUFFIX.values()]  # .h5 preferred when both exist
    for c in cands:
        if c.exists():
            return c
    have = ", ".join(s.stem for s in iter_stores(fdir)) or "none"
    raise MrsError(f"{fdir}: no feature store named {name!r} (available: {have}; "
                   f"run `mrs features text|image --dataset {dataset_dir}`)")


def load_features(dataset_dir: str | os.PathLike, name: str, fill: Fill = "mean", dtype=None):
    """Store ``name`` of the prepared dataset -> (features FloatTensor (I, d), present BoolTensor (I,)).

    Row ``i`` is prepared item ``i``. Absent rows get the mean present vector (``fill="mean"``)
    or zeros (``fill="zeros"``); ``present`` says which rows are real. ``dtype`` defaults to
    ``torch.float32``; ``torch.float16`` keeps a float16 store as it is (half the memory).
    """
    import torch

    if fill not in ("mean", "zeros"):
        raise MrsError(f"fill={fill!r}: expected 'mean' or 'zeros'")
    path = resolve_store(dataset_dir, name)
    _, feats, present, meta = read_store(path, ids=False)  # alignment is checked by checksum below
    want = dataset_items_checksum(dataset_dir)
    if meta.get("items_checksum") != want:
        raise MrsError(f"{path}: made for another item list (items_checksum {str(meta.get('items_checksum'))[:12]}… "
                       f"!= dataset's {want[:12]}…); re-run `mrs features` for {dataset_dir}")
    if meta.get("shard"):
        raise MrsError(f"{path}: is shard {meta['shard']}; join the shards with `mrs features merge`")
    x = torch.from_numpy(feats).to(dtype or torch.float32)  # (I, d); torch converts f16 in parallel
    mask = torch.from_numpy(present)
    if meta.get("normalisation") == "l2":
        check_unit_rows(path, x, mask)
    if not bool(mask.all()):
        absent = ~mask
        if fill == "mean" and bool(mask.any()):
            x[absent] = x[mask].float().mean(0).to(x.dtype)
        else:
            x[absent] = 0
    return x, mask


def check_unit_rows(path: Path, x, present, tol: float = 2e-2) -> None:
    """The writer L2-normalised every present row: a row that is not unit-norm (or not finite) was
    damaged on disk (an LMDB store, or an HDF5 one from before per-chunk checksums)."""
    import torch

    norms = torch.linalg.vector_norm(x, dim=1, dtype=torch.float32)  # (I,)
    bad = present & ~((norms - 1).abs() <= tol)  # NaN compares False: caught too
    n_bad = int(bad.sum())
    if n_bad:
        rows = torch.nonzero(bad).flatten()[:5].tolist()
        shown = ", ".join(f"{r} (norm {norms[r].item():.3g})" for r in rows)
        raise MrsError(f"{path}: damaged: {n_bad} of {int(present.sum())} present rows are not unit-norm "
                       f"though the store was written L2-normalised (rows {shown}); re-run `mrs features`")


def list_features(dataset_dir: str | os.PathLike) -> list[dict]:
    """One dict per finished store in ``<dataset>/features``: name, path, format, modality, encoder,
    dim, dtype, n_items, n_present, and whether it matches the dataset's current item list."""
    root = Path(dataset_dir)
    try:
        want = dataset_items_checksum(root)
    except MrsError:
        want = None
    out = []
    for p in iter_stores(root / "features"):
        try:
            m = read_meta(p)
        except MrsError as e:
            out.append({"name": p.stem, "path": str(p), "error": str(e)})
            continue
        out.append({"name": p.stem, "path": str(p), "format": p.suffix[1:],
                     **{k: m.get(k) for k in ("modality", "encoder", "dim", "dtype", "n_items",
                                              "n_present", "shard")},
                     "matches_dataset": m.get("items_checksum") == want})
    return out
