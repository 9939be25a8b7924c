r"""Approximate maximum-inner-product search over item factors with faiss.

The index searches inner products directly (``METRIC_INNER_PRODUCT``). The usual reduction of
MIPS to L2 search (append ``sqrt(M² − ‖x‖²)`` to each item, Bachrach et al. 2014) is exact in
theory but wrecked HNSW's recall here: on 20,000 random 64-d items with varying norms, recall@20
at efSearch=128 was 0.11 with the augmentation and 0.997 with the inner-product graph (both
M=32, efConstruction=200; low-rank items: 0.978 vs 0.995). Callers recompute the returned
candidates' scores exactly as ``q · x_i``.

Kinds (``IndexSpec.kind``): ``hnsw`` (default; ``IndexHNSWFlat``, M links, efConstruction,
efSearch), ``ivf`` (``IVF{nlist},Flat``, nprobe) and ``ivfpq`` (``IVF{nlist},PQ{m}``, for
catalogues past ~1M items). ``mrs export --index`` stores the index in the model directory as
``index/<spec>.faiss``, hashed in the manifest like the factors (``ServedModel.load`` verifies
it before faiss's C++ reader sees a byte). A model directory is read-only input: an index it does
not list (another spec, an older export) is built in memory at start (``for_model``), never
written into it.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mrs.errors import MrsError
from mrs.io import atomic_path

log = logging.getLogger(__name__)
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines list every CPU variant it tried


@dataclass(frozen=True)
class IndexSpec:
    kind: Literal["hnsw", "ivf", "ivfpq"] = "hnsw"
    hnsw_m: int = 32            # HNSW links per node
    ef_construction: int = 200  # HNSW build-time beam
    # HNSW query-time beam (raised to k when larger). At 1M items recall@20 was 0.980 with 128,
    # 0.991 with 256 and 0.9935 with 384 at 15.5x the speed of exact ranking (bench_serve_ann.py).
    ef_search: int = 384
    nlist: int = 0              # IVF cells; 0 = 4·sqrt(n_items)
    nprobe: int = 32            # IVF cells visited per query
    pq_m: int = 16              # IVF-PQ sub-quantisers (must divide dim)

    def name(self, n: int) -> str:
        if self.kind == "hnsw":
            return f"hnsw-m{self.hnsw_m}-efc{self.ef_construction}"
        nlist = self.nlist or int(4 * math.sqrt(n))
        return f"{self.kind}-nlist{nlist}" + (f"-pq{self.pq_m}" if self.kind == "ivfpq" else "")

    def file(self, n: int) -> str:
        """Path of this index inside a model directory (``n``: catalogue size)."""
        return f"index/{self.name(n)}.faiss"


class AnnIndex:
    """A faiss index over fixed item factors; ``search`` returns indices into those items."""

    def __init__(self, index, spec: IndexSpec, n_items: int):
        self.index, self.spec, self.n_items = index, spec, n_items

    @classmethod
    def build(cls, items: np.ndarray, spec: IndexSpec = IndexSpec(), seed: int = 0) -> "AnnIndex":
        import faiss

        x = np.ascontiguousarray(items, dtype=np.float32)
        n, d = x.shape
        if n == 0:
            raise MrsError("index: the catalogue has no items")
        if spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = spec.ef_construction
        elif spec.kind in ("ivf", "ivfpq"):
            nlist = max(1, min(spec.nlist or int(4 * math.sqrt(n)), n // 39 or 1))
            if spec.kind == "ivfpq" and d % spec.pq_m:
                raise MrsError(f"index.pq_m={spec.pq_m} must divide the factor dim {d}")
            desc = f"IVF{nlist},Flat" if spec.kind == "ivf" else f"IVF{nlist},PQ{spec.pq_m}"
            index = faiss.index_factory(d, desc, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            train = x[rng.choice(n, min(n, 256 * nlist), replace=False)]
            index.train(train)
        else:
            raise MrsError(f"index.kind: unknown {spec.kind!r} (hnsw | ivf | ivfpq)")
        index.add(x)
        return cls(index, spec, n)

    @classmethod
    def for_model(cls, root: Path, files: dict[str, str], items: np.ndarray,
                  spec: IndexSpec = IndexSpec()) -> "AnnIndex":
        """The index a model directory lists in its manifest's ``files`` (verified by
        ``ServedModel.load``), else one built in memory: nothing is written into ``root``."""
        name = spec.file(len(items))
        if name in files:
            return cls.read(Path(root) / name, items, spec)
        log.info("%s: no %s in the model directory; building it in memory (store it with "
                 "`mrs export --index %s`)", root, name, spec.kind)
        return cls.build(items, spec)

    @classmethod
    def read(cls, path: Path, items: np.ndarray, spec: IndexSpec = IndexSpec()) -> "AnnIndex":
        """Read a stored index; damaged or not matching ``items`` is a one-line ``MrsError``."""
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:  # faiss's C++ reader on damaged bytes
            raise MrsError(f"{path}: not a readable faiss index ({str(e).strip().splitlines()[-1][:160]})") from None
        if index.ntotal != len(items) or index.d != items.shape[1]:
            raise MrsError(f"{path}: holds {index.ntotal} items of dim {index.d}; the model has "
                           f"{len(items)} of dim {items.shape[1]}")
        return cls(index, spec, len(items))

    def write(self, path: Path) -> None:
        """Write atomically through Python's file object, so a full disk is an ``OSError``
        (``mrs.io`` names it) rather than an error inside faiss's C++ writer."""
        import faiss

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(f.write))

    @classmethod
    def load_or_build(cls, cache_dir: Path, items: np.ndarray, spec: IndexSpec = IndexSpec()) -> "AnnIndex":
        """The cached index in ``cache_dir`` (a directory of the caller's, never a model
        directory) when it is there and readable, else build and cache it."""
        path = Path(cache_dir) / f"{spec.name(len(items))}.faiss"
        if path.is_file():
            try:
                return cls.read(path, items, spec)
            except MrsError as e:
                log.warning("%s; rebuilding", e)
        ann = cls.build(items, spec)
        try:
            ann.write(path)
        except (OSError, MrsError) as e:  # a cache that cannot be written still serves
            log.warning("cannot cache the index at %s (%s)", path, e)
        return ann

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """``q (B, R)`` -> candidate item indices ``(B, k)`` (-1 where fewer exist)."""
        import faiss

        q = np.ascontiguousarray(q, dtype=np.float32)
        k = min(k, self.n_items)
        if self.spec.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.spec.ef_search, k))
        else:
            params = faiss.SearchParametersIVF(nprobe=self.spec.nprobe)
        _, idx = self.index.search(q, k, params=params)
        return idx
