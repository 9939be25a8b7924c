r"""Approximate search for FREEDOM's item kNN graph: a faiss inverted-file index (IVF).

The exact search (:func:`mrs.graph.knn_edges`) is memory-bounded but O(P²·d): at 1M × 384 it is
~7.7e14 multiply-adds, days on a few cores. IVF clusters the L2-normalised rows into ``nlist``
cells (k-means on a sample), and a query scans only the ``nprobe`` cells whose centroids are
most similar to it, so each query costs

.. math::
    \underbrace{\text{nlist} \cdot d}_{\text{coarse}} + \underbrace{\text{nprobe} \cdot (P / \text{nlist}) \cdot d}_{\text{scan}}

instead of :math:`P \cdot d`; with ``nlist = 4·sqrt(P)`` that is O(P^1.5·d) for the whole graph.
Inner product over unit rows is cosine, so it ranks exactly as the exact search; only items in
unprobed cells can be missed (recall < 1). ``nprobe = nlist`` probes every cell: exact.

Same contract as the exact search: absent items neither have nor are neighbours; with
``include_self`` an item is always in its own list (forced when the search missed it: a
nonzero row's own cell is the first one probed, but duplicate or zero rows tie with self); k per
present item; deterministic
(a seeded training sample and k-means, faiss threads set to torch's for the call).

Which search runs (``KnnSearch.kind``, ``model.options.freedom.knn_search``): ``exact``, ``ivf``,
or ``auto``: exact up to :data:`AUTO_EXACT_MAX` present items, IVF above (the measured times are
in experiments/benchmarks/README.md, "FREEDOM's item kNN graph").
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from mrs.errors import MrsError

log = logging.getLogger(__name__)
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines list every CPU variant it tried

AUTO_EXACT_MAX = 200_000  # ``auto``: exact search up to this many present items, IVF above
QUERY_CHUNK = 16_384  # query rows per faiss search call (bounds the normalised query copy)


@dataclass(frozen=True)
class KnnSearch:
    """How the item kNN graph is searched (``kind``), and the IVF parameters."""

    kind: Literal["auto", "exact", "ivf"] = "auto"
    nprobe: int = 16      # IVF cells scanned per query (nprobe = nlist: exhaustive, exact)
    nlist: int = 0        # IVF cells; 0 = 4·sqrt(P), at most P/39 (faiss wants >= 39 points per cell)
    seed: int = 0         # the k-means training sample and initialisation
    train_per_list: int = 64  # k-means trains on nlist × this many sampled rows (cost: linear in it)
    niter: int = 10       # k-means iterations

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "exact", "ivf"):
            raise MrsError(f"knn search: unknown kind {self.kind!r} (auto | exact | ivf)")
        if self.nprobe < 1 or self.nlist < 0:
            raise MrsError(f"knn search: nprobe must be >= 1 and nlist >= 0 (got {self.nprobe}, {self.nlist})")

    def resolve(self, n_present: int) -> str:
        """``exact`` or ``ivf`` for a modality with ``n_present`` items."""
        if self.kind == "auto":
            return "exact" if n_present <= AUTO_EXACT_MAX else "ivf"
        return self.kind

    def n_lists(self, n_present: int) -> int:
        return max(1, min(self.nlist or int(4 * math.sqrt(n_present)), n_present // 39 or 1))

    def tag(self, n_present: int) -> str:
        """Cache-key part: ``""`` for exact (the key of a graph built before IVF existed), else
        every parameter that changes the approximate graph."""
        if self.resolve(n_present) == "exact":
            return ""
        return (f"ivf-nlist{self.n_lists(n_present)}-nprobe{self.nprobe}-seed{self.seed}"
                f"-t{self.train_per_list}-it{self.niter}")


@dataclass
class KnnOptions:
    """The kNN search keys every plug-in with an item kNN graph takes (``model.options.<plug-in>.*``):
    FREEDOM's and LATTICE's ``Options`` extend it, so the keys and their checks live here once."""

    # exact: blocked exact search (O(I²·d)) | ivf: faiss IVF, approximate (1M x 384 in 759 s) |
    # auto: exact up to mrs.knn.AUTO_EXACT_MAX (200,000) present items per modality, ivf above
    knn_search: Literal["auto", "exact", "ivf"] = "auto"
    knn_nprobe: int = 16  # ivf: cells scanned per query (= knn_nlist: exhaustive)
    knn_nlist: int = 0  # ivf: cells; 0 = 4·sqrt(present items)
    plugin: ClassVar[str] = ""  # the plug-in whose keys these are (error messages name them)

    def __post_init__(self) -> None:
        if self.knn_nprobe < 1 or self.knn_nlist < 0:
            key = "knn_nprobe" if self.knn_nprobe < 1 else "knn_nlist"
            self.fail(key, ">= 1" if key == "knn_nprobe" else ">= 0")

    def fail(self, key: str, want: str) -> None:
        """Raise the one-line error for option ``key`` (its value is not ``want``)."""
        raise MrsError(f"config key 'model.options.{self.plugin}.{key}' must be {want}, got {getattr(self, key)}")

    def search(self) -> KnnSearch:
        return KnnSearch(kind=self.knn_search, nprobe=self.knn_nprobe, nlist=self.knn_nlist)


def _unit(x: Tensor) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32 C-contiguous numpy."""
    return np.ascontiguousarray(torch.nn.functional.normalize(x.float(), dim=1).numpy())


def ivf_knn_edges(features: Tensor, k: int, present: Tensor | None = None, include_self: bool = True,
                  search: KnnSearch = KnnSearch(kind="ivf")) -> tuple[Tensor, Tensor]:
    """:func:`mrs.graph.knn_edges` (same arguments and ``(row, col)`` layout, ``k'`` per present
    item) with an IVF index: approximate, ``O(P·(nlist + nprobe·P/nlist)·d)``.

    Memory: the features, the index's copy of the unit rows (``P·d`` floats), one query chunk
    and the ``P × (k+1)`` results; never ``P × P``.
    """
    import faiss

    n = features.shape[0]
    present = torch.ones(n, dtype=torch.bool) if present is None else present.bool()
    idx = present.nonzero().squeeze(1)  # (P,) prepared ids of present items
    x = features if bool(present.all()) else features[idx]  # (P, d)
    p, d = x.shape
    k = min(k, p if include_self else p - 1)
    if k <= 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    nlist = search.n_lists(p)
    kq = k if include_self else k + 1  # one extra to drop self
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed, index.cp.niter = search.seed, search.niter
        index.cp.max_points_per_centroid = search.train_per_list  # no second subsampling in faiss
        t0 = time.perf_counter()
        sample = np.sort(np.random.default_rng(search.seed).choice(p, min(p, search.train_per_list * nlist),
                                                                   replace=False))
        index.train(_unit(x[torch.from_numpy(sample)]))
        t1 = time.perf_counter()
        for s in range(0, p, QUERY_CHUNK):  # add in chunks: no full normalised copy besides the index's
            index.add(_unit(x[s:s + QUERY_CHUNK]))
        t2 = time.perf_counter()
        index.nprobe = min(search.nprobe, nlist)
        found = np.empty((p, kq), dtype=np.int64)  # (P, kq) positions among present items
        bar = tqdm(range(0, p, QUERY_CHUNK), desc=f"item kNN graph, IVF{nlist} nprobe={index.nprobe} (k={k})",
                   unit="chunk", leave=False, disable=p < 50_000)
        for s in bar:
            found[s:s + QUERY_CHUNK] = index.search(_unit(x[s:s + QUERY_CHUNK]), kq)[1]
        short = np.nonzero((found < 0).any(1))[0]  # probed cells held fewer than kq items
        if len(short):
            log.info("item kNN graph: %d rows short of %d candidates; searched again over all cells", len(short), kq)
            index.nprobe = nlist
            found[short] = index.search(_unit(x[torch.from_numpy(short)]), kq)[1]
        log.info("item kNN graph, IVF%d nprobe=%d over %d items: k-means on %d rows %.1f s, add %.1f s, "
                 "search %.1f s", nlist, min(search.nprobe, nlist), p, len(sample), t1 - t0, t2 - t1,
                 time.perf_counter() - t2)
    finally:
        faiss.omp_set_num_threads(threads)
    col = torch.from_numpy(found)  # (P, kq)
    me = torch.arange(p)[:, None]
    is_self = col == me  # (P, kq): at most one True per row
    has_self = is_self.any(1)
    if include_self:  # self missed (duplicate or zero rows tie with it): self first, drop the last
        col = torch.where(has_self[:, None], col, torch.cat([me, col[:, :-1]], 1))
    else:  # drop self, or the last candidate where self was not returned
        drop = is_self.clone()
        drop[~has_self, -1] = True
        col = col[~drop].view(p, k)
    row = torch.arange(p).repeat_interleave(k)
    return idx[row], idx[col.reshape(-1)]


def recall(approx: tuple[Tensor, Tensor], exact: tuple[Tensor, Tensor], k: int) -> float:
    """Share of the exact neighbours found: ``|N_approx(i) ∩ N_exact(i)| / |N_exact(i)|``
    averaged over the rows of ``exact`` (edge lists of :func:`ivf_knn_edges` / ``knn_edges``,
    ``k`` per row, rows in the same order)."""
    a, e = approx[1].view(-1, k), exact[1].view(-1, k)
    if a.shape != e.shape or not torch.equal(approx[0].view(-1, k)[:, 0], exact[0].view(-1, k)[:, 0]):
        raise MrsError(f"recall: edge lists cover different rows ({a.shape[0]} vs {e.shape[0]})")
    hits = (a[:, :, None] == e[:, None, :]).any(1).sum()  # (rows, k, k) compare, row by row
    return float(hits) / e.numel()
