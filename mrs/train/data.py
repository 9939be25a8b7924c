"""Training data as tensors: the train split's (user, item, modes) triples and their batches.

Nothing here reads raw data: only the prepared dataset (``mrs.data.prepared``) and the feature
stores (``mrs.features``). Batches are index slices of one permutation per epoch drawn from the
trainer's own ``torch.Generator``, so the data order is reproducible and resumable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from mrs.data.prepared import PreparedDataset
from mrs.errors import MrsError


@dataclass
class TrainTriples:
    """The train split as tensors on the training device."""

    users: Tensor  # (N,) long
    items: Tensor  # (N,) long
    modes: Tensor  # (N, k) long, one column per extra mode of the dataset (k may be 0)

    def __len__(self) -> int:
        return int(self.users.shape[0])


def train_triples(ds: PreparedDataset, device: torch.device | str = "cpu") -> TrainTriples:
    tr = ds.split("train")
    if len(tr) == 0:
        raise MrsError(f"{ds.root / 'interactions.parquet'}: no train interactions (split == 0)")
    users = torch.from_numpy(tr["user"].to_numpy(dtype=np.int64, copy=True))
    items = torch.from_numpy(tr["item"].to_numpy(dtype=np.int64, copy=True))
    if ds.mode_names:
        modes = torch.from_numpy(tr[ds.mode_names].to_numpy(dtype=np.int64, copy=True))
    else:
        modes = torch.zeros(len(tr), 0, dtype=torch.long)
    return TrainTriples(users.to(device), items.to(device), modes.to(device))


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """One shuffled pass over ``0..n-1`` in slices of ``batch_size`` (the last may be shorter)."""
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield perm[start:start + batch_size]


def n_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def load_feature_stores(ds: PreparedDataset, names: list[str], fill: str = "mean"
                        ) -> dict[str, Tensor]:
    """``{modality name: (n_items, d) float tensor}`` aligned with the dataset's items.

    Rows missing from a store are filled with the mean of the present rows (``fill="mean"``, as
    MMRec and LATTICE do) or zeros (``fill="zeros"``), so every item gets a content vector.
    """
    return load_feature_stores_with_present(ds, names, fill)[0]


def load_feature_stores_with_present(ds: PreparedDataset, names: list[str], fill: str = "mean"
                                     ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """:func:`load_feature_stores` plus ``{modality: (n_items,) bool}``, the rows each store really
    has (the kNN graph gives filled rows no edges)."""
    if not names:
        return {}, {}
    from mrs.features import load_features

    out, masks = {}, {}
    for name in names:
        feats, present = load_features(ds.root, name, fill=fill)
        if feats.shape[0] != ds.n_items:
            raise MrsError(f"feature store {name!r}: {feats.shape[0]} rows for {ds.n_items} items")
        if not bool(present.any()):
            raise MrsError(f"feature store {name!r} in {ds.root}: no item has a vector")
        out[name] = feats.float()
        masks[name] = present.bool()
    return out, masks
