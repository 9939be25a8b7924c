"""Percentile bootstrap confidence intervals of means over queries, vectorised.

Each replicate resamples the Q queries with replacement. Rather than materialising the
``(R, Q)`` resampled values, a block of replicates is turned into a count matrix
``W (r, Q)`` (how often each query was drawn) and the replicate means are one matmul
``W @ values / Q``, for all metrics at once. The same draws serve every metric, so the intervals
of different metrics are computed on the same resamples.
"""
from __future__ import annotations

import numpy as np


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 block_elems: int = 1 << 22) -> np.ndarray:
    """``values (Q, M)`` per-query metric values -> ``(M, 2)`` lower and upper bounds of the mean.

    With no queries the bounds are NaN; with ``n_boot == 0`` they are NaN as well.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    Q, M = values.shape
    if Q == 0 or n_boot <= 0:
        return np.full((M, 2), np.nan)
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, block_elems // Q))
    means = np.empty((n_boot, M))
    for s in range(0, n_boot, block):
        r = min(block, n_boot - s)
        draws = rng.integers(0, Q, size=(r, Q))                               # (r, Q)
        flat = (np.arange(r)[:, None] * Q + draws).ravel()
        W = np.bincount(flat, minlength=r * Q).reshape(r, Q).astype(np.float64)  # (r, Q) counts
        means[s:s + r] = W @ values / Q                                       # (r, M)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)                 # (M,), (M,)
    return np.stack([lo, hi], 1)
