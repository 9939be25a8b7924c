r"""``ease``: Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data".

.. math::
    P = (X^\top X + \lambda I)^{-1}, \qquad B = I - P \,\mathrm{diag}(1 / \mathrm{diag}\,P)
    \;\;(\text{so } B[i, j] = -P[i, j] / P[j, j],\; B[j, j] = 0), \qquad \hat{y}(u, \cdot) = X[u] B

``X``: the binary train matrix. ``B`` is a dense ``(I, I)`` matrix, so the model is refused above
``model.options.ease.max_memory_mb`` (one dense matrix: everything is done in place in it: the
Gram matrix is filled in blocks of item rows, factorised and inverted by LAPACK's Cholesky
``potrf`` / ``potri`` overwriting it, then scaled into ``B``). Peak memory is about one ``I²``
matrix, against about three for ``numpy.linalg.inv`` (``experiments/benchmarks/bench_baselines.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.linalg.lapack as lapack

from mrs.errors import MrsError
from mrs.models.base import CLOSED_FORM
from mrs.models.closed.base import Interactions, ItemItemRecommender
from mrs.models.closed.neighbours import item_blocks

SYM_BLOCK = 2048  # rows per step of the in-place symmetrisation


@dataclass
class EASEOptions:
    lam: float = 300.0  # λ: L2 weight on B (Steck's grid; Sports' valid picks ~300)
    # budget in MiB for the dense I x I matrix; 0 = auto (half the machine's RAM)
    max_memory_mb: float = 0.0
    dtype: Literal["float32", "float64"] = "float32"  # precision of the Gram matrix and its inverse


def auto_budget_mb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 / 2**20
    except (ValueError, OSError, AttributeError):
        return 4096.0


def dense_mb(n_items: int, dtype: str) -> float:
    return n_items * n_items * np.dtype(dtype).itemsize / 2**20


@CLOSED_FORM.register("ease", rank=3)
class EASE(ItemItemRecommender):
    """EASE: closed-form item-item ridge regression with a zero diagonal (dense I x I, memory budget)."""

    Options = EASEOptions

    def __init__(self, n_users: int, n_items: int, lam: float = 300.0, max_memory_mb: float = 0.0,
                 dtype: str = "float32"):
        super().__init__(n_users, n_items)
        if not np.isfinite(lam) or lam < 0:
            raise MrsError(f"config key 'model.options.ease.lam' must be >= 0, got {lam!r}")
        if max_memory_mb < 0:
            raise MrsError(f"config key 'model.options.ease.max_memory_mb' must be >= 0 (0 = auto), "
                           f"got {max_memory_mb!r}")
        budget = max_memory_mb or auto_budget_mb()
        need = dense_mb(n_items, dtype)
        if need > budget:
            raise MrsError(f"config key 'model.options.ease.max_memory_mb': EASE's dense {n_items} x "
                           f"{n_items} {dtype} matrix needs {need:.0f} MiB, above the budget of "
                           f"{budget:.0f} MiB; raise the key, or use itemknn / rp3beta")
        self.lam, self.dtype = float(lam), dtype

    @classmethod
    def from_config(cls, cfg, ctx) -> "EASE":
        o = cls.options(cfg)
        return cls(ctx.n_users, ctx.n_items, o.lam, o.max_memory_mb, o.dtype)

    def _fit(self, train: Interactions) -> None:
        self.weights = None  # a refit frees the old matrix first
        self.weights = ease_weights(self.profile, self.lam, self.dtype)


def ease_weights(x, lam: float, dtype: str = "float32") -> np.ndarray:
    """``B (I, I)`` of the binary ``x (U, I)``, computed in one dense matrix (module docstring)."""
    n = x.shape[1]
    g = np.zeros((n, n), dtype=dtype)                                  # (I, I), C order
    xt = x.T.tocsr().astype(dtype)
    xd = x.astype(dtype)
    for rows in item_blocks(x):                                        # G = XᵀX, bounded blocks
        (xt[rows] @ xd).toarray(out=g[rows])                           # written into g: no dense copy
    g[np.diag_indices(n)] += lam
    # G is symmetric, so its transpose (a Fortran-order view, no copy) is the same matrix and
    # LAPACK can overwrite it: potrf (A = UᵀU in A's upper triangle), then potri (A⁻¹ there).
    # A's upper triangle is G's lower one.
    potrf, potri = ((lapack.spotrf, lapack.spotri) if g.dtype == np.float32
                    else (lapack.dpotrf, lapack.dpotri))
    a = g.T
    c, info = potrf(a, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise MrsError(f"EASE: XᵀX + λI is not positive definite (LAPACK potrf info={info}); "
                       f"raise model.options.ease.lam (now {lam:g})")
    if not np.shares_memory(c, g):  # LAPACK worked on a copy (not expected for a Fortran view)
        a[...] = c
    c, info = potri(a, lower=0, overwrite_c=1)
    if info != 0:
        raise MrsError(f"EASE: inverting XᵀX + λI failed (LAPACK potri info={info})")
    if not np.shares_memory(c, g):
        a[...] = c
    del c
    symmetrise_lower(g)                                                # g = P
    d = np.diag(g).copy()
    g /= -d[None, :]                                                   # B[i, j] = -P[i, j] / P[j, j]
    g[np.diag_indices(n)] = 0.0
    return g


def symmetrise_lower(g: np.ndarray, block: int = SYM_BLOCK) -> None:
    """Copy ``g``'s lower triangle onto its upper one, in place, a block of rows at a time."""
    n = g.shape[0]
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        sq = g[r0:r1, r0:r1]
        sq[...] = np.tril(sq) + np.tril(sq, -1).T                     # the diagonal block
        g[r0:r1, r1:] = g[r1:, r0:r1].T                               # right of it, from below
