"""Batched full ranking: score a batch of queries against every item, mask, ``torch.topk``.

Nothing here holds a ``(Q, n_items)`` matrix: ``B`` queries at a time are scored
(``scores (B, n_items)``), the user's already-seen items are set to ``-inf`` with one
``index_put_``, and only the top-``K`` indices ``(B, K)`` are kept. Seen items live in a CSR
structure (``indptr (U+1,)``, ``indices (nnz,)``) built with ``bincount`` + ``cumsum``, so building
and gathering masks has no Python loop over users. Runs on the device of the scores.
When even ``(B, n_items)`` is over the memory budget, the items are scored ``C`` at a time and
each chunk's top-k is merged into a running top-k (``item_chunk``; sizes from
:mod:`mrs.eval.budget`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mrs.errors import MrsError

# score_fn(users (B,), modes (B, n_modes)) -> scores (B, n_items); e.g. a model's
# full_sort_predict with a cached encode() bound in. Item-chunked ranking (mrs.eval.budget) also
# calls score_fn(users, modes, items=slice(c0, c1)) -> (B, c1 - c0).
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


def mask_rows_(scores: Tensor, seen: Csr, users: np.ndarray, items: slice | None = None) -> Tensor:
    """Set ``scores[b, i] = -inf`` for every item ``i`` that ``seen`` holds for ``users[b]``
    (``items``: the scores' columns are items ``items.start .. items.stop - 1`` only)."""
    pos, cols = seen.gather(users)
    if items is not None:
        keep = (cols >= items.start) & (cols < items.stop)
        pos, cols = pos[keep], cols[keep] - items.start
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


def accepts_items(score_fn: ScoreFn) -> bool:
    """Whether ``score_fn`` takes ``items=slice`` (scores of an item range ``(B, C)``), which
    item-chunked ranking needs."""
    if getattr(score_fn, "accepts_items", False):
        return True
    try:
        return "items" in inspect.signature(score_fn).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def rank_topk(score_fn: ScoreFn, users: np.ndarray, modes: np.ndarray, k: int, *,
              seen: Csr | None = None, batch_size: int = 4096, device: torch.device | str = "cpu",
              candidates: Callable[[slice], Tensor] | None = None,
              progress: bool | None = None, n_items: int | None = None,
              item_chunk: int | None = None) -> np.ndarray:
    """Top-``k`` item indices ``(Q, k)`` (int64, best first) for each query ``(users[q], modes[q])``.

    ``seen``: per-user items to exclude (set to -inf). ``candidates(batch_slice)`` optionally
    returns a bool ``(B, n_items)`` mask of the only rankable items (sampled protocol). Masked
    items can still fill the list when fewer than ``k`` are rankable; they are never relevant, so
    they never count as hits. ``progress=None`` shows a bar only for long jobs (>= 20 batches).

    ``item_chunk``: score ``C`` items at a time (``score_fn(users, modes, items=slice)`` ->
    ``(B, C)``) and merge each chunk's top-k into a running top-k ``(B, k)``, so no block larger
    than ``(B, C)`` exists (see :mod:`mrs.eval.budget`); needs ``n_items``.
    """
    Q = len(users)
    users_t = torch.as_tensor(users, dtype=torch.long)
    modes_t = torch.as_tensor(modes, dtype=torch.long).reshape(Q, -1)
    out = np.empty((Q, k), dtype=np.int64)
    chunked = item_chunk is not None and n_items is not None and item_chunk < n_items
    if chunked and not accepts_items(score_fn):
        raise MrsError("item-chunked ranking needs score_fn(users, modes, items=slice); "
                       "raise eval.max_memory_mb or pass such a score function")
    starts = range(0, Q, batch_size)
    show = len(starts) >= 20 if progress is None else progress
    for s in tqdm(starts, desc="ranking", unit="batch", disable=not show, leave=False):
        sl = slice(s, min(s + batch_size, Q))
        u, m = users_t[sl].to(device), modes_t[sl].to(device)
        cand = candidates(sl) if candidates is not None else None       # (B, n_items) bool
        if not chunked:
            top_v, top_i = _block_topk(score_fn(u, m), k, users[sl], seen, cand, n_items, 0, None)
        else:
            top_v = top_i = None
            for c0 in range(0, n_items, item_chunk):
                items = slice(c0, min(c0 + item_chunk, n_items))
                v, i = _block_topk(score_fn(u, m, items=items), k, users[sl], seen,
                                   None if cand is None else cand[:, items], items.stop - c0, c0,
                                   items)
                if top_v is not None:   # top-k of the union = top-k of (running top-k, chunk top-k)
                    v, i = torch.cat([top_v, v], 1), torch.cat([top_i, i], 1)
                    v, pick = torch.topk(v, min(k, v.shape[1]), dim=1, sorted=True)
                    i = i.gather(1, pick)
                top_v, top_i = v, i
        # topk ranks NaN above every number, so a NaN anywhere in a row shows in its first value
        if torch.isnan(top_v[:, 0]).any():
            bad = int(users[sl][torch.isnan(top_v[:, 0]).cpu().numpy()][0])
            raise MrsError(f"score_fn returned NaN scores (first for user {bad}); "
                           "the model has diverged or an embedding is NaN")
        kk = top_i.shape[1]
        out[sl, :kk] = top_i.cpu().numpy()
        if kk < k:   # fewer items than k: pad with an index no query holds as relevant
            out[sl, kk:] = -1
    return out


def _block_topk(scores: Tensor, k: int, users: np.ndarray, seen: Csr | None, cand: Tensor | None,
                width: int | None, offset: int, items: slice | None) -> tuple[Tensor, Tensor]:
    """Mask one block of scores ``(B, C)`` (items ``offset .. offset + C - 1``) and return its
    top-k values and global item indices, ``(B, min(k, C))`` each."""
    B = len(users)
    if scores.shape[0] != B or (width is not None and scores.shape[1] != width):
        raise MrsError(f"score_fn returned scores of shape {tuple(scores.shape)}, expected "
                       f"({B}, {width}): is the model built for this dataset?")
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    elif not scores.is_floating_point():
        raise TypeError(f"score_fn returned {scores.dtype} scores; need floats")
    if cand is not None:
        scores = scores.masked_fill(~cand.to(scores.device), float("-inf"))
    elif seen is not None:
        # masking writes in place: copy first if the scores are a view of someone's tensor
        if scores._base is not None or scores.requires_grad:
            scores = scores.clone()
        scores = mask_rows_(scores, seen, users, items)
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1, sorted=True)   # (B, kk)
    return top.values, top.indices + offset
