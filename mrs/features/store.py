"""Feature stores on disk: HDF5 and LMDB, one layout contract, one writer and one reader each.

HDF5 (``<modality>-<encoder>.h5``)::

    /item_ids   (n,) str     raw item ids, in prepared-item order
    /features   (n, d) f16   (or f32) chunked by rows; rows of absent items are zero
    /present    (n,) bool    False where the input was missing or unreadable
    attrs       meta (see ``Meta``): encoder, encoder_version, dim, dtype, normalisation,
                items_checksum (of the dataset), input_checksum (of the texts / image bytes), ...

LMDB (``<modality>-<encoder>.lmdb/``, a directory holding ``data.mdb``)::

    key  = raw item id (utf-8)  ->  value = d little-endian floats (raw bytes, dtype in meta)
    key  = b"__meta__"           ->  JSON of the same meta plus ``item_ids``
    absent items have no key. No pickle anywhere; readers open read-only, lock-free, lazily.

Both writers are created through ``open_writer`` and written row-block by row-block, so a
store never has to fit in memory, and both land atomically (temporary sibling + rename).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from mrs.errors import MrsError
from mrs.io import atomic_dir, atomic_path, chmod_default

FORMAT_VERSION = 1
META_KEY = b"__meta__"
SUFFIX = {"h5": ".h5", "lmdb": ".lmdb"}
ROW_CHUNK = 1024  # HDF5 chunk rows: big enough for fast sequential reads, small for random ones


class StoreWriter(Protocol):
    def write(self, start: int, features: np.ndarray, present: np.ndarray) -> None: ...
    def close(self, meta_update: dict[str, Any] | None = None) -> None: ...


def store_format(path: str | os.PathLike) -> str:
    """``"h5"`` or ``"lmdb"`` from the path's suffix."""
    suffix = Path(path).suffix
    for fmt, s in SUFFIX.items():
        if suffix == s:
            return fmt
    raise MrsError(f"{path}: unknown feature store suffix {suffix!r} (expected .h5 or .lmdb)")


class _H5Writer:
    def __init__(self, path: Path, item_ids: list[str], dim: int, dtype: str, meta: dict):
        import h5py

        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self.meta = dict(meta)
        n = len(item_ids)
        self.f = h5py.File(self._tmp, "w")
        self.f.create_dataset("item_ids", data=np.asarray(item_ids, dtype=object),
                              dtype=h5py.string_dtype("utf-8"))
        # No compression: float features barely compress and decompression would dominate reads.
        # A Fletcher-32 checksum per chunk (HDF5 verifies it on every read, ~0.05 s per 250 MB): a
        # damaged file is an error naming its rows, never silently wrong vectors.
        self.f.create_dataset("features", shape=(n, dim), dtype=dtype,
                              chunks=(max(1, min(n, ROW_CHUNK)), dim) if n else None, fillvalue=0,
                              fletcher32=bool(n))
        self.f.create_dataset("present", shape=(n,), dtype=bool, fillvalue=False,
                              chunks=(max(1, min(n, ROW_CHUNK * 64)),) if n else None, fletcher32=bool(n))

    def write(self, start: int, features: np.ndarray, present: np.ndarray) -> None:
        end = start + len(features)
        self.f["features"][start:end] = features
        self.f["present"][start:end] = present

    def close(self, meta_update: dict[str, Any] | None = None) -> None:
        self.meta.update(meta_update or {})
        for k, v in self.meta.items():
            self.f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v)
        self.f.close()
        chmod_default(self._tmp)
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self.f.close()
        self._ctx.__exit__(MrsError, MrsError("aborted"), None)


class _LmdbWriter:
    def __init__(self, path: Path, item_ids: list[str], dim: int, dtype: str, meta: dict):
        import lmdb

        self._ctx = atomic_dir(path)
        self._tmp = self._ctx.__enter__()
        self.meta = dict(meta)
        self.item_ids = [str(x) for x in item_ids]
        if any(x.encode() == META_KEY for x in self.item_ids):
            raise MrsError(f"{path}: an item id equals the reserved LMDB key {META_KEY.decode()!r}")
        self.dtype = np.dtype(dtype).newbyteorder("<")
        n = len(item_ids)
        # map_size is a ceiling on virtual address space, not an allocation: be generous.
        map_size = int(n * (dim * self.dtype.itemsize + 64 + 2 * 32) * 2 + n * 64 + (64 << 20))
        self.env = lmdb.open(str(self._tmp), map_size=map_size, subdir=True, sync=False,
                             metasync=False, writemap=False, readahead=False, lock=True)
        self.n_present = 0

    def write(self, start: int, features: np.ndarray, present: np.ndarray) -> None:
        feats = np.ascontiguousarray(features, dtype=self.dtype)
        with self.env.begin(write=True) as txn:
            for j in range(len(feats)):
                if present[j]:
                    txn.put(self.item_ids[start + j].encode(), feats[j].tobytes())
                    self.n_present += 1

    def close(self, meta_update: dict[str, Any] | None = None) -> None:
        self.meta.update(meta_update or {})
        meta = {**self.meta, "item_ids": self.item_ids}
        with self.env.begin(write=True) as txn:
            txn.put(META_KEY, json.dumps(meta).encode())
        self.env.sync(True)
        self.env.close()
        (self._tmp / "lock.mdb").unlink(missing_ok=True)  # readers open lock-free
        for p in (self._tmp, *self._tmp.iterdir()):
            chmod_default(p)
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self.env.close()
        self._ctx.__exit__(MrsError, MrsError("aborted"), None)


def open_writer(path: str | os.PathLike, item_ids: list[str], dim: int, meta: dict,
                dtype: str = "float16"):
    """A writer for ``path`` (format from its suffix); nothing appears at ``path`` until ``close``."""
    path = Path(path)
    meta = {**meta, "format_version": FORMAT_VERSION, "dim": int(dim), "dtype": str(np.dtype(dtype)),
            "n_items": len(item_ids)}
    cls = _H5Writer if store_format(path) == "h5" else _LmdbWriter
    return cls(path, [str(x) for x in item_ids], int(dim), str(np.dtype(dtype)), meta)


def write_store(path: str | os.PathLike, item_ids: list[str], features: np.ndarray,
                present: np.ndarray, meta: dict, dtype: str = "float16") -> Path:
    """Write a whole store in one call (tests, small stores, merges)."""
    w = open_writer(path, item_ids, features.shape[1], meta, dtype)
    for s in range(0, len(item_ids), ROW_CHUNK):
        w.write(s, features[s:s + ROW_CHUNK], present[s:s + ROW_CHUNK])
    w.close({"n_present": int(np.count_nonzero(present))})
    return Path(path)


# ----------------------------------------------------------------------------- reading

def read_meta(path: str | os.PathLike) -> dict:
    """The store's meta (attributes / ``__meta__``) without reading any feature rows."""
    path = _existing(path)
    if store_format(path) == "h5":
        with _open_h5(path) as f:
            return {k: _attr(v) for k, v in f.attrs.items()}
    with _lmdb_errors(path), _open_lmdb(path) as env, env.begin() as txn:
        meta = _lmdb_meta(txn, path)
    meta.pop("item_ids", None)
    return meta


def read_store(path: str | os.PathLike, ids: bool = True) -> tuple[list[str] | None, np.ndarray, np.ndarray, dict]:
    """Whole store -> (item_ids, features (n, d) in the stored dtype, present (n,) bool, meta).

    ``ids=False`` skips decoding the id strings (HDF5; the reader trusts ``items_checksum`` instead).
    """
    path = _existing(path)
    if store_format(path) == "h5":
        with _open_h5(path) as f:
            for key in ("item_ids", "features", "present"):
                if key not in f:
                    raise MrsError(f"{path}: HDF5 store has no /{key} dataset")
            item_ids = f["item_ids"].asstr()[()].tolist() if ids else None
            ds = f["features"]
            feats = np.empty(ds.shape, dtype=ds.dtype)
            if feats.size:
                # one sequential read straight into place: chunks are whole rows
                _checked_read(path, ds, lambda: ds.read_direct(feats))
            present = _checked_read(path, f["present"], lambda: f["present"][()]).astype(bool)
            meta = {k: _attr(v) for k, v in f.attrs.items()}
        return item_ids, feats, present, meta
    with _lmdb_errors(path), _open_lmdb(path) as env, env.begin(buffers=True) as txn:
        meta = _lmdb_meta(txn, path)
        ids = [str(x) for x in meta.pop("item_ids")]
        dtype = np.dtype(meta["dtype"]).newbyteorder("<")
        d = int(meta["dim"])
        index = {x.encode(): i for i, x in enumerate(ids)}
        feats = np.zeros((len(ids), d), dtype=dtype)
        present = np.zeros(len(ids), dtype=bool)
        # Cursor order is key order: one sequential pass over the B-tree, no random gets, and each
        # value is copied once, straight from the memory map into its row.
        for key, value in txn.cursor():
            i = index.get(bytes(key))
            if i is None:
                continue  # __meta__
            if len(value) != d * dtype.itemsize:
                raise MrsError(f"{path}: item {bytes(key).decode()!r} has {len(value)} bytes, "
                               f"expected {d}x{dtype.itemsize}")
            feats[i] = np.frombuffer(value, dtype=dtype)
            present[i] = True
    return ids, feats.astype(dtype.newbyteorder("="), copy=False), present, meta


class LmdbFeatures:
    """Lazy per-item access to an LMDB store: ``feats["item_id"] -> (d,)`` array or ``None``.

    The environment is opened on first use in each process (read-only, lock-free), so an instance
    can be handed to DataLoader workers and each worker gets its own handle after the fork.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.dtype = np.dtype(self.meta["dtype"]).newbyteorder("<")
        self._env, self._pid = None, None

    def __getitem__(self, item_id: str) -> np.ndarray | None:
        if self._pid != os.getpid():
            # A handle inherited through fork must not be used; closing the child's copy (read-only,
            # lock-free: just an unmap) also lets py-lmdb open the path again in this process.
            self.close()
            self._env, self._pid = _open_lmdb(self.path), os.getpid()
        with self._env.begin() as txn:
            raw = txn.get(str(item_id).encode())
        return None if raw is None else np.frombuffer(raw, dtype=self.dtype)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env, self._pid = None, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_env": None, "_pid": None}  # handles never cross processes


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise MrsError(f"{path}: feature store not found")
    return path


@contextlib.contextmanager
def _open_h5(path: Path) -> Iterator[Any]:
    """The HDF5 store read-only; an unreadable file becomes a one-line error naming it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            yield f
    except OSError as e:
        raise MrsError(f"{path}: not a readable HDF5 feature store ({e})") from None


def _checked_read(path: Path, ds: Any, read: Any) -> Any:
    """``read()``; when HDF5 fails it (a chunk's checksum does not match: the file is damaged),
    a one-line error naming the store and the rows whose chunks fail."""
    try:
        return read()
    except OSError as e:
        bad, n = [], ds.shape[0]
        step = ds.chunks[0] if ds.chunks else max(n, 1)
        for s in range(0, n, step):
            try:
                ds[s:s + step]
            except OSError:
                bad.append(f"{s}-{min(s + step, n) - 1}")
        where = f"rows {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}" if bad else "its layout"
        raise MrsError(f"{path}: damaged: /{ds.name.lstrip('/')} {where} fail their checksum ({e}); "
                       f"re-run `mrs features` for this store") from None


def _open_lmdb(path: Path):
    """The LMDB store read-only (an ``lmdb.Environment``, also a context manager that closes it)."""
    import lmdb

    if not (path / "data.mdb").is_file():
        raise MrsError(f"{path}: not an LMDB feature store (no data.mdb)")
    with _lmdb_errors(path):
        return lmdb.open(str(path), readonly=True, lock=False, subdir=True, readahead=False)


@contextlib.contextmanager
def _lmdb_errors(path: Path) -> Iterator[None]:
    """A garbage or damaged LMDB file (``lmdb.InvalidError``, ``CorruptedError``, ...) becomes a
    one-line error naming the store."""
    import lmdb

    try:
        yield
    except lmdb.Error as e:
        raise MrsError(f"{path}: not a readable LMDB feature store ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None


def _lmdb_meta(txn: Any, path: Path) -> dict:
    """The JSON ``__meta__`` entry (item_ids included)."""
    raw = txn.get(META_KEY)
    if raw is None:
        raise MrsError(f"{path}: LMDB store has no {META_KEY.decode()!r} entry")
    try:
        meta = json.loads(bytes(raw))
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not {"item_ids", "dtype", "dim"} <= set(meta):
        raise MrsError(f"{path}: LMDB store's {META_KEY.decode()!r} entry is damaged")
    return meta


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            pass
    return v


def iter_stores(features_dir: Path) -> Iterator[Path]:
    """Finished stores in a ``features/`` directory (temporaries and shards' work dirs skipped)."""
    if not features_dir.is_dir():
        return
    for p in sorted(features_dir.iterdir()):
        if p.name.startswith(".") or p.suffix not in SUFFIX.values():
            continue
        yield p
