"""Batched full ranking: score a batch of queries against every item, mask, ``torch.topk``.

Nothing here holds a ``(Q, n_items)`` matrix: ``B`` queries at a time are scored
(``scores (B, n_items)``), the user's already-seen items are set to ``-inf`` with one
``index_put_``, and only the top-``K`` indices ``(B, K)`` are kept. Seen items live in a CSR
structure (``indptr (U+1,)``, ``indices (nnz,)``) built with ``bincount`` + ``cumsum``, so building
and gathering masks has no Python loop over users. Runs on the device of the scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mrs.errors import MrsError

# score_fn(users (B,), modes (B, n_modes)) -> scores (B, n_items); e.g. a model's
# full_sort_predict with a cached encode() bound in.
ScoreFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Csr:
    """Rows of sorted, unique column indices: row ``r`` is ``indices[indptr[r]:indptr[r+1]]``."""

    indptr: np.ndarray   # (n_rows + 1,) int64
    indices: np.ndarray  # (nnz,) int64

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, n_rows: int) -> "Csr":
        """Build from (row, col) pairs; duplicates are dropped, columns sorted within a row."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if len(rows):
            n_cols = int(cols.max()) + 1
            keys = np.unique(rows * n_cols + cols)        # sorted by row, then column
            rows, cols = keys // n_cols, keys % n_cols
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        return cls(indptr, cols)

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entries of the given rows as ``(position in rows, column)`` pairs, vectorised."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[rows]
        lens = self.indptr[rows + 1] - starts
        pos = np.repeat(np.arange(len(rows)), lens)
        # offset inside each row: global running index minus the row's first running index
        offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        return pos, self.indices[np.repeat(starts, lens) + offs]

    def row_ids(self) -> np.ndarray:
        """The row of every stored entry, ``(nnz,)``."""
        return np.repeat(np.arange(self.n_rows), self.lengths())


def mask_rows_(scores: Tensor, seen: Csr, users: np.ndarray) -> Tensor:
    """Set ``scores[b, i] = -inf`` for every item ``i`` that ``seen`` holds for ``users[b]``."""
    pos, cols = seen.gather(users)
    if len(pos):
        idx = (torch.from_numpy(pos).to(scores.device), torch.from_numpy(cols).to(scores.device))
        scores.index_put_(idx, torch.tensor(float("-inf"), device=scores.device, dtype=scores.dtype))
    return scores


def sample_candidates(n_items: int, users: np.ndarray, truth_pos: np.ndarray, truth_cols: np.ndarray,
                      all_seen: Csr, n_neg: int, generator: torch.Generator) -> Tensor:
    """Sampled protocol: bool ``(B, n_items)``, true on each query's relevant items plus ``n_neg``
    items drawn uniformly without replacement from the items its user never interacted with.

    Drawn by the Gumbel-top-k trick (uniform keys, seen items keyed -1, top ``n_neg``), so the
    draw is exact, seeded, and needs no rejection loop; a user with fewer unseen items gets all.
    """
    B = len(users)
    keys = torch.rand(B, n_items, generator=generator)            # (B, n_items), on CPU: same draw on any device
    pos, cols = all_seen.gather(users)
    keys[torch.from_numpy(pos), torch.from_numpy(cols)] = -1.0
    top = keys.topk(min(n_neg, n_items), dim=1)
    cand = torch.zeros(B, n_items, dtype=torch.bool)
    cand.scatter_(1, top.indices, top.values >= 0)                 # drop draws that hit seen items
    cand[torch.from_numpy(truth_pos), torch.from_numpy(truth_cols)] = True
    return cand


@torch.no_grad()
def rank_topk(score_fn: ScoreFn, users: np.ndarray, modes: np.ndarray, k: int, *,
              seen: Csr | None = None, batch_size: int = 4096, device: torch.device | str = "cpu",
              candidates: Callable[[slice], Tensor] | None = None,
              progress: bool | None = None, n_items: int | None = None) -> np.ndarray:
    """Top-``k`` item indices ``(Q, k)`` (int64, best first) for each query ``(users[q], modes[q])``.

    ``seen``: per-user items to exclude (set to -inf). ``candidates(batch_slice)`` optionally
    returns a bool ``(B, n_items)`` mask of the only rankable items (sampled protocol). Masked
    items can still fill the list when fewer than ``k`` are rankable; they are never relevant, so
    they never count as hits. ``progress=None`` shows a bar only for long jobs (>= 20 batches).
    """
    Q = len(users)
    users_t = torch.as_tensor(users, dtype=torch.long)
    modes_t = torch.as_tensor(modes, dtype=torch.long).reshape(Q, -1)
    out = np.empty((Q, k), dtype=np.int64)
    starts = range(0, Q, batch_size)
    show = len(starts) >= 20 if progress is None else progress
    for s in tqdm(starts, desc="ranking", unit="batch", disable=not show, leave=False):
        sl = slice(s, min(s + batch_size, Q))
        scores = score_fn(users_t[sl].to(device), modes_t[sl].to(device))   # (B, n_items)
        if scores.shape[0] != sl.stop - sl.start or (n_items is not None and scores.shape[1] != n_items):
            raise MrsError(f"score_fn returned scores of shape {tuple(scores.shape)}, expected "
                           f"({sl.stop - sl.start}, {n_items}): is the model built for this dataset?")
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        elif not scores.is_floating_point():
            raise TypeError(f"score_fn returned {scores.dtype} scores; need floats")
        if candidates is not None:
            scores = scores.masked_fill(~candidates(sl).to(scores.device), float("-inf"))
        elif seen is not None:
            # masking writes in place: copy first if the scores are a view of someone's tensor
            if scores._base is not None or scores.requires_grad:
                scores = scores.clone()
            scores = mask_rows_(scores, seen, users[sl])
        kk = min(k, scores.shape[1])
        top = torch.topk(scores, kk, dim=1, sorted=True)                    # (B, kk)
        # topk ranks NaN above every number, so a NaN anywhere in a row shows in its first value
        if torch.isnan(top.values[:, 0]).any():
            bad = int(users[sl][torch.isnan(top.values[:, 0]).cpu().numpy()][0])
            raise MrsError(f"score_fn returned NaN scores (first for user {bad}); "
                           "the model has diverged or an embedding is NaN")
        out[sl, :kk] = top.indices.cpu().numpy()
        if kk < k:   # fewer items than k: pad with an index no query holds as relevant
            out[sl, kk:] = -1
    return out
