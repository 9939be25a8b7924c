"""The prepared-dataset contract: the one boundary every later phase reads.

A prepared dataset is a directory:

- ``interactions.parquet``: ``user`` int32 (0..U-1), ``item`` int32 (0..I-1), ``ts`` int64 (unix
  seconds; absent only where the source has no time), one int column per extra tensor mode
  (named as in ``dataset.json["modes"]``, values 0..cardinality-1), ``split`` int8
  (0 train, 1 valid, 2 test).
- ``items.parquet``: ``item``, ``item_id`` (raw id, str), ``text`` (what the text encoder reads),
  ``image`` (path relative to the image root, or a URL, or null), attributes.
- ``users.parquet``: ``user``, ``user_id``.
- ``dataset.json``: ``name``, ``source``, ``n_users``, ``n_items``, ``n_interactions``, ``modes``
  (``{name: {"cardinality": n, "labels": [...]}}``), ``splits`` (``{"train": n, ...}``),
  ``params`` (the preparation parameters), ``input_checksum``, ``items_checksum`` (of the
  ordered raw item ids: feature stores are keyed to it) and any source-specific counts.

``write_prepared`` validates and writes all four atomically; ``load_prepared`` reads and checks.
"""
from __future__ import annotations

import hashlib
import os
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mrs.errors import MrsError
from mrs.io import atomic_dir

SPLITS = {"train": 0, "valid": 1, "test": 2}
FILES = ("dataset.json", "interactions.parquet", "items.parquet", "users.parquet")


def items_checksum(item_ids: pd.Series | list[str]) -> str:
    """sha256 of the ordered raw item ids: a feature store made for another item order is refused."""
    h = hashlib.sha256()
    for x in item_ids:
        h.update(str(x).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class PreparedDataset:
    root: Path
    meta: dict
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def n_users(self) -> int:
        return int(self.meta["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.meta["n_items"])

    @property
    def mode_names(self) -> list[str]:
        """Extra tensor modes in their declared order (may be empty)."""
        return list(self.meta.get("modes", {}))

    @property
    def mode_cardinalities(self) -> list[int]:
        return [int(self.meta["modes"][m]["cardinality"]) for m in self.mode_names]

    def split(self, name: str) -> pd.DataFrame:
        return self.interactions[self.interactions["split"] == SPLITS[name]]

    def item_train_counts(self) -> np.ndarray:
        """Train interactions per item, shape (n_items,)."""
        tr = self.split("train")
        return np.bincount(tr["item"].to_numpy(), minlength=self.n_items)


def write_prepared(out_dir: str | Path, interactions: pd.DataFrame, items: pd.DataFrame,
                   users: pd.DataFrame, *, name: str, source: str, modes: dict[str, dict],
                   params: dict[str, Any], input_checksum: str,
                   extra: dict[str, Any] | None = None, carry: list[str] | None = None) -> Path:
    """Validate and write a prepared dataset to ``out_dir`` atomically; return the path.

    ``modes`` maps each extra mode column in ``interactions`` to ``{"cardinality": n,
    "labels": [...]}``. ``extra`` adds source-specific counts (e.g. items missing metadata).
    ``carry``: entries of an existing ``out_dir`` moved into the new one; by default every entry
    but the four files written here (``features/``, ``images/`` and anything else stay).
    """
    out_dir = Path(out_dir)
    if len(interactions) == 0:
        raise MrsError(f"{name}: no interactions left to write")
    # a shallow copy whose columns are replaced, never written in place, and copy=False casts:
    # a column already in its dtype is not duplicated (66M rows: 264 MB per int32 column)
    inter = interactions.copy(deep=False)
    inter["user"] = inter["user"].astype(np.int32, copy=False)
    inter["item"] = inter["item"].astype(np.int32, copy=False)
    inter["split"] = inter["split"].astype(np.int8, copy=False)
    if "ts" in inter:
        inter["ts"] = inter["ts"].astype(np.int64, copy=False)
    for m, spec in modes.items():
        if m not in inter:
            raise MrsError(f"{name}: mode {m!r} declared but no such interactions column")
        inter[m] = inter[m].astype(np.int32, copy=False)
        card = int(spec["cardinality"])
        lo, hi = int(inter[m].min()), int(inter[m].max())
        if lo < 0 or hi >= card:
            raise MrsError(f"{name}: mode {m!r} values {lo}..{hi} outside 0..{card - 1}")
    n_users, n_items = len(users), len(items)
    _check_index(inter["user"], n_users, "user", name)
    _check_index(inter["item"], n_items, "item", name)
    counts = np.bincount(inter["split"].to_numpy(), minlength=3)

    def write_inter(path: Path) -> tuple[int, np.ndarray]:
        inter.to_parquet(path, index=False)
        return len(inter), counts

    return write_prepared_stream(out_dir, write_inter, items, users, name=name, source=source, modes=modes,
                                 params=params, input_checksum=input_checksum, extra=extra, carry=carry)


def write_prepared_stream(out_dir: str | Path, write_interactions: Callable[[Path], tuple[int, np.ndarray]],
                          items: pd.DataFrame, users: pd.DataFrame | pa.Table | Path, *, name: str, source: str,
                          modes: dict[str, dict], params: dict[str, Any], input_checksum: str,
                          extra: dict[str, Any] | None = None, carry: list[str] | None = None) -> Path:
    """:func:`write_prepared` whose interactions are written by ``write_interactions(path)`` (e.g.
    streamed from an out-of-core query; it returns (rows, rows per split ``(3,)``) and is trusted
    to have checked codes and mode ranges); ``users`` may be an arrow table (``user``, ``user_id``)
    or such a parquet file on the same filesystem (moved in), so millions of ids never become
    Python strings."""
    out_dir = Path(out_dir)
    user_col = pq.read_table(users, columns=["user"])["user"] if isinstance(users, Path) else users["user"]
    n_users, n_items = len(user_col), len(items)
    if not np.array_equal(items["item"].to_numpy(), np.arange(n_items)):
        raise MrsError(f"{name}: items.parquet 'item' must be 0..{n_items - 1} in order")
    if not np.array_equal(np.asarray(user_col), np.arange(n_users)):
        raise MrsError(f"{name}: users.parquet 'user' must be 0..{n_users - 1} in order")
    items = items.copy()
    items["item_id"] = items["item_id"].astype(str)
    if isinstance(users, pd.DataFrame):
        users = users.copy()
        users["user_id"] = users["user_id"].astype(str)
    if carry is None:
        carry = sorted(e.name for e in out_dir.iterdir() if e.name not in FILES) if out_dir.is_dir() else []
    with atomic_dir(out_dir, carry=carry) as tmp:
        n_inter, counts = write_interactions(tmp / "interactions.parquet")
        if n_inter == 0:
            raise MrsError(f"{name}: no interactions left to write")
        meta = {
            "name": name,
            "source": source,
            "n_users": n_users,
            "n_items": n_items,
            "n_interactions": int(n_inter),
            "modes": {m: {"cardinality": int(s["cardinality"]), "labels": [str(x) for x in s.get("labels", [])]}
                      for m, s in modes.items()},
            "splits": {k: int(counts[v]) for k, v in SPLITS.items()},
            "params": params,
            "input_checksum": input_checksum,
            "items_checksum": items_checksum(items["item_id"]),
            **(extra or {}),
        }
        items.to_parquet(tmp / "items.parquet", index=False)
        if isinstance(users, pd.DataFrame):
            users.to_parquet(tmp / "users.parquet", index=False)
        elif isinstance(users, Path):
            os.replace(users, tmp / "users.parquet")     # a file beside out_dir: a rename
        else:
            pq.write_table(users, tmp / "users.parquet")
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out_dir


def load_prepared(root: str | Path, columns: list[str] | None = None) -> PreparedDataset:
    """Read a prepared dataset directory; missing files or columns raise a one-line ``MrsError``."""
    root = Path(root)
    for f in FILES:
        if not (root / f).is_file():
            raise MrsError(f"{root / f}: missing (is {root} a prepared dataset? run `mrs prepare` or `mrs synth`)")
    meta = json.loads((root / "dataset.json").read_text())
    inter = pd.read_parquet(root / "interactions.parquet", columns=columns)
    items = pd.read_parquet(root / "items.parquet")
    users = pd.read_parquet(root / "users.parquet")
    for col in ("user", "item", "split", *meta.get("modes", {})):
        if (columns is None or col in columns) and col not in inter:
            raise MrsError(f"{root / 'interactions.parquet'}: missing column {col!r}")
    for col in ("item", "item_id"):
        if col not in items:
            raise MrsError(f"{root / 'items.parquet'}: missing column {col!r}")
    return PreparedDataset(root=root, meta=meta, interactions=inter, items=items, users=users)


def _check_index(col: pd.Series, n: int, what: str, name: str) -> None:
    if len(col) and (int(col.min()) < 0 or int(col.max()) >= n):
        raise MrsError(f"{name}: interaction {what} index outside 0..{n - 1}")
