"""``planted.npz``: the ground truth beside the generated files, saved and loaded in one place."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mrs.io import atomic_path
from mrs.synth.planted import Planted

FULL_FACTORS_MAX_BYTES = 256 << 20  # beyond this, planted.npz holds the compact form only


def save_planted(path: str | Path, p: Planted, item_ids: np.ndarray,
                 user_ids: np.ndarray | None = None) -> None:
    """The ground truth as one ``.npz``, written atomically. Row ``i`` is generator item ``i``.

    Always: ``user_taste, cluster_factors, context_factors, time_factors, centroid_mix,
    item_cluster, item_popularity, user_activity, cluster_slice, item_ids[, user_ids]``; also
    the expanded ``user_factors (U, R)`` and ``item_factors (I, R)`` when they are small
    (``load_planted`` rebuilds everything either way).
    """
    arrays = {"user_taste": p.user_taste, "cluster_factors": p.cluster_factors,
              "context_factors": p.context_factors, "time_factors": p.time_factors,
              "centroid_mix": np.float64(p.centroid_mix), "item_cluster": p.item_cluster,
              "item_popularity": p.item_popularity, "user_activity": p.user_activity,
              "cluster_slice": p.cluster_slice,
              **({"cluster_successor": p.cluster_successor, "seq_strength": np.float64(p.seq_strength)}
                 if p.cluster_successor is not None else {}),
              "item_ids": np.char.encode(np.asarray(item_ids).astype(str), "ascii")}  # bytes: 1/4 of U
    if user_ids is not None:
        arrays["user_ids"] = np.char.encode(np.asarray(user_ids).astype(str), "ascii")
    if (len(p.user_taste) + len(p.item_cluster)) * p.rank * 8 <= FULL_FACTORS_MAX_BYTES:
        arrays["user_factors"], arrays["item_factors"] = p.user_factors, p.item_factors
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # uncompressed: random factors barely compress and zlib is slow


def load_planted(path: str | Path) -> tuple[Planted, dict[str, np.ndarray]]:
    """``planted.npz`` -> (the ``Planted`` model, the raw id arrays ``item_ids`` / ``user_ids``)."""
    with np.load(path) as z:
        p = Planted(z["user_taste"], z["time_factors"], z["context_factors"], float(z["centroid_mix"]),
                    z["item_cluster"], z["item_popularity"], z["user_activity"], z["cluster_slice"],
                    z["cluster_successor"] if "cluster_successor" in z else None,
                    float(z["seq_strength"]) if "seq_strength" in z else 0.0)
        ids = {k: np.char.decode(z[k], "ascii") for k in ("item_ids", "user_ids") if k in z}
    return p, ids
