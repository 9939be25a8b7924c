"""One mrs feature store written as FAERec's item-embedding file, and the check that both read it.

FAERec (ZhifuWei/FAERec, ``FAERec/src/llm.py``: ``llm_embeddings``) loads
``llm_emb/<data_name>/itm_emb_np.npy`` relative to its working directory: float rows for the items
``1 … max_item`` of ``<data_name>.txt`` in id order (row ``k - 1`` = item ``k``), then inserts a zero
row at index 0 (padding) and appends one zero row (its ``item_size = max_item + 2``). mrs's
prepared ``amazon2014`` dataset keeps each item's id of that file as ``items.item_id``, so the
export is the store's rows put in that order. :func:`check_faerec_export` re-reads the file the way
FAERec does and refuses (one line) unless its rows ``1 … max_item`` are the very floats mrs's trainer
reads (:func:`mrs.train.data.load_feature_stores`), compared by SHA-256 of the arrays.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mrs.errors import MrsError
from mrs.io import atomic_path
from mrs.prep.mmrec_export import digest  # SHA-256 of dtype, shape and bytes, as the MMRec check


def mrs_rows_in_faerec_order(dataset_dir: str | Path, store: str, fill: str = "mean") -> np.ndarray:
    """``(max_item, d)`` float32: the store as mrs's trainer reads it, row ``k - 1`` = the item whose
    id in the sequence file is ``k``. Refused unless those ids are exactly ``1 … n_items`` (FAERec
    indexes its table by them; a gap would shift every later row)."""
    from mrs.data.prepared import load_prepared
    from mrs.train.data import load_feature_stores

    ds = load_prepared(dataset_dir)
    raw = ds.items["item_id"].astype(str)
    if not raw.str.fullmatch(r"[1-9][0-9]*").all():
        bad = raw[~raw.str.fullmatch(r"[1-9][0-9]*")].iloc[0]
        raise MrsError(f"{dataset_dir}: item id {bad!r} is not a positive integer; FAERec reads "
                       f"integer item ids 1..max (mrs prepare amazon2014 --sequences)")
    ids = raw.astype(np.int64).to_numpy()
    if len(np.unique(ids)) != len(ids) or ids.min() != 1 or ids.max() != len(ids):
        raise MrsError(f"{dataset_dir}: item ids are not exactly 1..{len(ids)} (max {ids.max()}); "
                       f"FAERec's table would be misaligned")
    x = load_feature_stores(ds, [store], fill)[store].numpy().astype(np.float32, copy=False)
    out = np.empty_like(x)
    out[ids - 1] = x
    return out


def export_faerec(dataset_dir: str | Path, store: str, out_npy: str | Path, fill: str = "mean") -> str:
    """Write ``out_npy`` (FAERec's ``itm_emb_np.npy``) atomically; returns its digest."""
    x = mrs_rows_in_faerec_order(dataset_dir, store, fill)
    with atomic_path(out_npy) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, x, allow_pickle=False)
    return digest(x)


def faerec_reads(npy: str | Path) -> np.ndarray:
    """The table FAERec builds from ``npy`` (``llm_embeddings``: zero row inserted at 0, one
    appended, float32)."""
    path = Path(npy)
    if not path.is_file():
        raise MrsError(f"{path}: missing; export the embeddings first (run.py --prepare)")
    a = np.load(path, allow_pickle=False)
    a = np.insert(a, 0, values=np.zeros((1, a.shape[1])), axis=0)
    return np.concatenate([a, np.zeros((1, a.shape[1]))], axis=0).astype(np.float32)


def check_faerec_export(dataset_dir: str | Path, store: str, npy: str | Path, sequences: str | Path,
                        fill: str = "mean") -> str:
    """Refuse (one-line :class:`MrsError`) unless ``npy`` read as FAERec reads it has one row per
    item of ``sequences`` plus its two padding rows, zero padding, and rows ``1 … max_item``
    bit-identical to what mrs reads. Returns the digest of those rows."""
    max_item = 0
    with open(sequences) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 1:
                max_item = max(max_item, max(int(p) for p in parts[1:]))
    table = faerec_reads(npy)
    if table.shape[0] != max_item + 2:
        raise MrsError(f"{npy}: {table.shape[0] - 2} item rows, but {sequences} has items 1..{max_item}; "
                       f"FAERec would misalign its table: re-export (run.py --prepare)")
    if table[0].any() or table[-1].any():
        raise MrsError(f"{npy}: FAERec's padding rows are not zero")
    want = digest(mrs_rows_in_faerec_order(dataset_dir, store, fill))
    got = digest(table[1:-1])  # the digest covers the shape
    if got != want:
        raise MrsError(f"{npy} differs from mrs's store {store!r} (sha256 {got[:12]}… != "
                       f"{want[:12]}…); the two sides' inputs differ: re-export (run.py --prepare)")
    return want
