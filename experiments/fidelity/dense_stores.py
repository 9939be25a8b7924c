"""Diagnostic: a copy of a prepared dataset whose feature stores have every row *present*, the
missing ones holding the mean-filled vector mrs's trainer would read anyway.

MMRec has no notion of a missing feature row: the exported ``*_feat.npy`` hold mean-filled rows,
and MMRec's FREEDOM/LATTICE give them kNN edges like any other row (identical vectors: each
other's neighbours). mrs gives filled rows no edges (``mrs.graph.freedom_knn_adj``). On this copy
mrs builds its graphs over all rows as MMRec does, while the matrices (and so the exported files
and their digests) stay the same; training mrs on both copies isolates that one difference.

    python experiments/fidelity/dense_stores.py SRC DST text-minilm image-efficientnet_lite0
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from mrs.features import load_features  # noqa: E402
from mrs.features.store import read_store, write_store  # noqa: E402
from mrs.features.reader import resolve_store  # noqa: E402


def main() -> None:
    src, dst, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cache", "features"))
    (dst / "features").mkdir()
    for name in names:
        path = resolve_store(src, name)
        ids, _, present, meta = read_store(path)
        x, _ = load_features(src, name, fill="mean")
        write_store(dst / "features" / f"{name}.h5", list(ids), x.numpy().astype(np.float32),
                    np.ones(len(ids), dtype=bool), {**meta, "normalisation": "none"}, dtype="float32")
        # ("none": the mean rows are not unit-norm, so the l2 integrity check would refuse them)
        print(f"{name}: {int(present.sum())} of {len(ids)} rows present in {src}; all present in {dst}")


if __name__ == "__main__":
    main()
