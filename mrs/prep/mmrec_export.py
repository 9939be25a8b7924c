"""A prepared dataset written as MMRec's dataset folder, and the check that both read the same.

The inverse of :mod:`mrs.prep.mmrec` (``mrs prepare mmrec``), for running enoche/MMRec's own code
on exactly the inputs mrs trains on (``experiments/fidelity``):

- ``<name>.inter``: tab-separated ``userID itemID x_label`` (MMRec's ``USER_ID_FIELD``,
  ``ITEM_ID_FIELD`` and ``inter_splitting_label``; ``x_label`` 0/1/2 = train/valid/test), one
  line per prepared interaction, in the prepared file's order; ids are the prepared 0-based ids.
- ``image_feat.npy`` / ``text_feat.npy``: float32 ``(n_items, d)``, row = itemID, the feature
  stores *as mrs's trainer reads them* (:func:`mrs.train.data.load_feature_stores`: rows missing
  from a store filled with the same ``fill``), so both sides see identical matrices.

MMRec sizes its tables as ``max id + 1`` over the ``.inter`` file, so the export refuses a dataset
whose last user or item has no interaction (the two sides would disagree on the item count).
:func:`check_export` re-reads the written files the way MMRec reads them (``pandas.read_csv`` with
its three columns, ``numpy.load``) and compares their SHA-256 digests with those of the arrays
mrs reads; any difference is a one-line :class:`~mrs.errors.MrsError` naming the file.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.errors import MrsError
from mrs.io import atomic_path, write_text_atomic

COLUMNS = ("userID", "itemID", "x_label")
MARKER = "mrs_mmrec_export.txt"  # marks a folder this exporter may refresh
FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}  # MMRec's default file names


def digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def mrs_inputs(dataset_dir: str | Path, stores: dict[str, str], fill: str = "mean"
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """What mrs trains and evaluates on: ``(N, 3)`` int64 rows ``(user, item, split)`` of the
    prepared interactions, and ``{modality: (n_items, d) float32}`` for ``stores``
    (``{"image": store name, "text": store name}``) as the trainer loads them."""
    from mrs.data.prepared import load_prepared
    from mrs.train.data import load_feature_stores

    ds = load_prepared(dataset_dir)
    inter = ds.interactions
    rows = np.stack([inter[c].to_numpy(np.int64) for c in ("user", "item", "split")], axis=1)
    bad = [m for m in stores if m not in FEATURE_FILES]
    if bad:
        raise MrsError(f"modality {bad[0]!r}: MMRec reads only {sorted(FEATURE_FILES)} "
                       f"({', '.join(FEATURE_FILES.values())})")
    for col, n, what in ((0, ds.n_users, "user"), (1, ds.n_items, "item")):
        top = int(rows[:, col].max()) + 1 if len(rows) else 0
        if top != n:
            raise MrsError(f"{dataset_dir}: {n} {what}s but the last {what} with an interaction is "
                           f"{top - 1}; MMRec sizes its tables as max {what} id + 1, so the two sides "
                           f"would disagree on the {what} count")
    feats = load_feature_stores(ds, list(stores.values()), fill) if stores else {}
    arrays = {m: feats[name].numpy().astype(np.float32, copy=False) for m, name in stores.items()}
    return rows, arrays


def _digests(name: str, rows: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """``{file name: digest}`` of what the export writes: the ``.inter`` rows and each feature file."""
    return {f"{name}.inter": digest(rows), **{FEATURE_FILES[m]: digest(x) for m, x in arrays.items()}}


def export_mmrec(dataset_dir: str | Path, out_dir: str | Path, name: str, stores: dict[str, str],
                 fill: str = "mean") -> dict[str, str]:
    """Write ``out_dir/<name>.inter`` and the feature ``.npy`` files (each atomically); returns
    ``{file name: digest of the array mrs reads}``. ``out_dir`` must be new, empty, or an earlier
    export (it holds :data:`MARKER`): a folder of someone else's files (e.g. MMRec's own dataset
    folder) is refused, never overwritten. In an earlier export, the cached kNN graphs MMRec left
    (``mm_adj*.pt``, ``*_adj_*.pt``) are removed: they were built from the previous features."""
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise MrsError(f"{out}: holds files this exporter did not write (no {MARKER}); export into a new "
                       f"or empty folder")
    rows, arrays = mrs_inputs(dataset_dir, stores, fill)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / MARKER, f"written by mrs.prep.mmrec_export from {Path(dataset_dir)} as {name!r}\n")
    for stale in {*out.glob("mm_adj*.pt"), *out.glob("*_adj_*.pt")}:  # a set: a name can match both
        stale.unlink(missing_ok=True)
    for m, f in FEATURE_FILES.items():
        if m not in arrays and (out / f).exists():
            (out / f).unlink()  # MMRec loads whatever feature file is present
    with atomic_path(out / f"{name}.inter") as tmp:
        with open(tmp, "w") as fh:
            fh.write("\t".join(COLUMNS) + "\n")
            np.savetxt(fh, rows, fmt="%d", delimiter="\t")
    for m, x in arrays.items():
        with atomic_path(out / FEATURE_FILES[m]) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, x, allow_pickle=False)
    return _digests(name, rows, arrays)


def read_back(out_dir: str | Path, name: str) -> dict[str, np.ndarray]:
    """The arrays MMRec will read from ``out_dir`` (``RecDataset.load_inter_graph``, ``np.load``)."""
    out = Path(out_dir)
    path = out / f"{name}.inter"
    if not path.is_file():
        raise MrsError(f"{path}: missing; export the dataset first")
    df = pd.read_csv(path, sep="\t", usecols=list(COLUMNS))
    got = {path.name: df[list(COLUMNS)].to_numpy(np.int64)}
    for f in FEATURE_FILES.values():
        if (out / f).is_file():
            got[f] = np.load(out / f, allow_pickle=False).astype(np.float32, copy=False)
    return got


def check_export(dataset_dir: str | Path, out_dir: str | Path, name: str, stores: dict[str, str],
                 fill: str = "mean") -> dict[str, str]:
    """Refuse (one-line :class:`MrsError`) unless the MMRec folder holds exactly what mrs reads:
    the same files, and per file the same digest. Returns ``{file: digest}``."""
    rows, arrays = mrs_inputs(dataset_dir, stores, fill)
    want = _digests(name, rows, arrays)
    got = {f: digest(a) for f, a in read_back(out_dir, name).items()}
    for f in sorted(set(want) | set(got)):
        if want.get(f) != got.get(f):
            what = ("is there but mrs reads no such modality" if f not in want else
                    "is missing" if f not in got else
                    f"differs from what mrs reads (sha256 {got[f][:12]}… != {want[f][:12]}…)")
            raise MrsError(f"{Path(out_dir) / f} {what}; the two sides' inputs differ: re-export "
                           f"with experiments/fidelity/run.py --export")
    return want
