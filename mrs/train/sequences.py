"""Per-user item sequences from a prepared dataset, for sequential user encoders (``sasrec``,
``bert4rec``).

Order. A user's interactions are ordered by ``ts``; rows with the same ``ts`` (same day in H&M,
same second in Amazon) are ordered by the tie rule ``model.seq_ties``:

- ``file`` (default): the row order of ``interactions.parquet``, which every ``mrs prepare``
  keeps from the source file (a stable sort).
- ``shuffle``: a seeded random order within each tie. Amazon 2014's raw reviews carry day-level
  timestamps with many same-day ties; shuffling them is known to move SASRec's Beauty NDCG@10
  from .046 to .035 in a published reproduction, so the rule is explicit, never implicit.

A dataset without ``ts`` is accepted only when its rows are in time order by construction
(``mrs prepare amazon2014``: the SASRec/ICLRec ``.txt`` lines are already time-ordered and carry
no timestamps, so there are no ties); anything else is an error naming the missing column.

What a model sees:

- training (:class:`SeqTrain`): each user's last ``L + 1`` *train* items, ``inputs (U', L)`` and
  next-item ``targets (U', L)`` (left-padded, users with < 2 train items dropped) with the
  target's mode values ``(U', L, k)``: the CP context/time modes of the target still apply.
- a query of split S (:func:`histories`): the user's last ``L`` items of the splits before S
  (valid: train; test: train + valid) ``(U, L)``, left-padded with ``n_items``. Users with no
  such item get an all-padding history (the "no history" state, trained to predict users' first
  train items); those with a query in the split are counted.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mrs.data.prepared import SPLITS, PreparedDataset
from mrs.errors import MrsError

log = logging.getLogger(__name__)
TIE_RULES = ("file", "shuffle")


def time_order(ds: PreparedDataset, ties: str = "file", seed: int = 0) -> np.ndarray:
    """Row indices of ``ds.interactions`` sorted by (user, ts, tie rule) ``(N,)``."""
    if ties not in TIE_RULES:
        raise MrsError(f"config key 'model.seq_ties': {ties!r} is not one of {list(TIE_RULES)}")
    inter = ds.interactions
    n = len(inter)
    users = inter["user"].to_numpy()
    if "ts" in inter:
        ts = inter["ts"].to_numpy()
    elif ds.meta.get("source") == "amazon2014" or ds.meta.get("row_order") == "time":
        ts = np.zeros(n, dtype=np.int64)  # rows already in time order: file order is the order
        ties = "file"
    else:
        raise MrsError(f"{ds.root / 'interactions.parquet'}: missing column 'ts' (a sequential "
                       f"model.user_encoder needs the order of each user's interactions)")
    tie_key = (np.arange(n) if ties == "file"
               else np.random.default_rng(seed).permutation(n))
    return np.lexsort((tie_key, ts, users))


def _left_pad(users: np.ndarray, values: np.ndarray, n_rows: int, length: int, pad) -> np.ndarray:
    """Rows grouped by user (in order) -> ``(n_rows, length, ...)``: each user's last ``length``
    values right-aligned, ``pad`` before them. ``users`` sorted; no loop over users."""
    counts = np.bincount(users, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(users)) - starts[users]                 # position within the user
    from_end = counts[users] - 1 - pos                          # 0 = the user's last row
    keep = from_end < length
    out = np.full((n_rows, length, *values.shape[1:]), pad, dtype=values.dtype)
    out[users[keep], length - 1 - from_end[keep]] = values[keep]
    return out


def histories(ds: PreparedDataset, split: str, length: int, order: np.ndarray) -> tuple[Tensor, int]:
    """``(history (U, L) long, n_empty)``: each user's last ``L`` items before ``split``
    (``"train"`` gives the full train sequence's tail; ``"all"`` every split, what a server
    knows at export), padded with ``n_items``; ``n_empty``: users with a row in ``split`` (a
    query) and none before it."""
    inter = ds.interactions
    sp = inter["split"].to_numpy()[order]
    limit = {**SPLITS, "train": SPLITS["valid"], "all": max(SPLITS.values()) + 1}[split]
    keep = sp < limit
    users = inter["user"].to_numpy()[order][keep].astype(np.int64)
    items = inter["item"].to_numpy()[order][keep].astype(np.int64)
    hist = _left_pad(users, items, ds.n_users, length, ds.n_items)
    before = np.bincount(users, minlength=ds.n_users) > 0
    queried = np.zeros(ds.n_users, dtype=bool)  # users with a row in the split (all: every user)
    queried[inter["user"].to_numpy()[order][sp == limit] if split != "all" else slice(None)] = True
    n_empty = int((queried & ~before).sum())
    return torch.from_numpy(hist), n_empty


@dataclass
class SeqTrain:
    """Training sequences: one row per user with >= 2 train items."""

    users: Tensor    # (S,) long
    inputs: Tensor   # (S, L) long, padded with n_items
    targets: Tensor  # (S, L) long, -1 where there is no target
    modes: Tensor    # (S, L, k) long, the target interaction's mode values (0 on padding)
    items: Tensor    # (S, L) long, the last L train items themselves (bert4rec's input), padded
    first: Tensor    # (S,) long, the user's first train item (the no-history state's target)
    first_modes: Tensor  # (S, k) long, its interaction's mode values

    def __len__(self) -> int:
        return int(self.users.shape[0])


def train_sequences(ds: PreparedDataset, length: int, order: np.ndarray) -> SeqTrain:
    """Next-item training pairs at every position of each user's last ``L + 1`` train items."""
    inter = ds.interactions
    o = order[inter["split"].to_numpy()[order] == SPLITS["train"]]
    users = inter["user"].to_numpy()[o].astype(np.int64)
    items = inter["item"].to_numpy()[o].astype(np.int64)
    modes = (inter[ds.mode_names].to_numpy()[o].astype(np.int64) if ds.mode_names
             else np.zeros((len(o), 0), dtype=np.int64))
    U, I = ds.n_users, ds.n_items
    seq = _left_pad(users, items, U, length + 1, I)                  # (U, L+1)
    seq_modes = _left_pad(users, modes, U, length + 1, 0)            # (U, L+1, k)
    rows = np.flatnonzero((seq != I).sum(1) >= 2)
    if len(rows) == 0:
        raise MrsError(f"{ds.root / 'interactions.parquet'}: no user has 2 train interactions, "
                       f"so there is no next item to learn from")
    inp, tgt = seq[rows, :-1], seq[rows, 1:].copy()
    tgt[inp == I] = -1                                               # no input token -> no target
    first = np.full(U, -1, dtype=np.int64)
    first_row = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])  # users sorted: each one's first row
    first[users[first_row]] = first_row
    return SeqTrain(torch.from_numpy(rows), torch.from_numpy(inp), torch.from_numpy(tgt),
                    torch.from_numpy(np.ascontiguousarray(seq_modes[rows, 1:])),
                    torch.from_numpy(seq[rows, 1:]), torch.from_numpy(items[first[rows]]),
                    torch.from_numpy(np.ascontiguousarray(modes[first[rows]])))


class SequenceData:
    """What the trainer needs for a sequential user encoder: training sequences, and the query
    history of each split (built on first use, cached)."""

    def __init__(self, ds: PreparedDataset, length: int, ties: str = "file", seed: int = 0):
        if length < 1:
            raise MrsError(f"config key 'model.seq_len': must be >= 1, got {length}")
        self.ds, self.length = ds, length
        self.order = time_order(ds, ties, seed)
        self.train = train_sequences(ds, length, self.order)
        self._hist: dict[str, Tensor] = {}
        self.n_empty: dict[str, int] = {}

    def history(self, split: str) -> Tensor:
        if split not in self._hist:
            self._hist[split], self.n_empty[split] = histories(self.ds, split, self.length, self.order)
            if self.n_empty[split]:
                log.info("%s: %d users have no interaction before %s (they get the no-history state)",
                         self.ds.name, self.n_empty[split], split)
        return self._hist[split]


# ---------------------------------------------------------------------------------- training
def sequence_loss(model, batch: tuple[Tensor, ...], generator: torch.Generator, mask_prob: float = 0.2,
                  negatives: str = "uniform", candidates: int = 16, hard: str = "hardest",
                  temperature: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """The training loss of one batch of training sequences: the user encoder turns them into
    predictions (next item at every position, or the masked items of bert4rec, plus the
    no-history state's), this function draws their negatives (data, not terms: how many, the
    model says), and :meth:`CPRecommender.training_loss` assembles the one loss.

    Negatives are drawn from ``generator`` and never equal the prediction's target:

    - ``sampled_softmax``: ``model.loss_negatives`` uniform items per prediction, or one such set
      shared by the step's predictions (``model.loss_negatives_scope=batch``); a draw equal to the
      target is masked out of the softmax, the usual accidental-hit rule; uniform proposals need
      no log-Q correction (log Q is the same constant for every candidate);
    - otherwise (``bpr``, ``bce``, and one per prediction where a plug-in compares with a negative): one
      uniform item other than the target, or with ``train.negatives=dynamic`` the hardest /
      ``softmax(score / temperature)``-drawn of ``candidates`` such items, scored with the
      prediction's own query.
    """
    emb = model.encode()
    item_emb = emb[1]                                                     # (I, R)
    p = model.user_encoder.train_predictions(batch, item_emb, model.scorer, generator, mask_prob,
                                             embed=model.sequence_embedder())
    k, n, n_items = model.n_negatives(), p.pos.shape[0], model.n_items
    dev = p.pos.device
    if k and model.loss == "sampled_softmax":
        shape = (1, k) if model.shared_negatives else (n, k)  # (1, K): one set for every prediction
        p.neg = torch.randint(n_items, shape, generator=generator).to(dev)  # (N, K) or (1, K)
    elif k:
        m = candidates if negatives == "dynamic" else 1
        r = torch.randint(n_items - 1, (n, m), generator=generator).to(dev)
        cand = r + (r >= p.pos[:, None]).long()                           # (N, M) uniform over items != target
        if m > 1:
            with torch.no_grad():
                s = model.scorer.score(p.queries, item_emb[cand])         # (N, M)
                idx = (s.argmax(1, keepdim=True) if hard == "hardest" else torch.multinomial(
                    torch.softmax(s.float() / temperature, 1).cpu(), 1, generator=generator).to(dev))
            cand = cand.gather(1, idx)
        p.neg = cand[:, 0]
    return model.training_loss(p, emb)


def bucketed_batches(s: SeqTrain, batch_size: int, generator: torch.Generator, pad: int,
                     bucket: int = 16):
    """Batches of sequence rows of similar length (so a batch is trimmed to its longest row,
    not to ``L``): a random permutation cut into chunks of ``bucket`` batches, each chunk sorted
    by length and cut into batches, then all batches in random order. Every row once per epoch."""
    lengths = (s.items != pad).sum(1)
    perm = torch.randperm(len(s), generator=generator)
    batches = []
    for start in range(0, len(s), batch_size * bucket):
        chunk = perm[start:start + batch_size * bucket]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    for j in torch.randperm(len(batches), generator=generator).tolist():
        yield batches[j]


def train_epoch_seq(tr, epoch: int) -> dict[str, float]:
    """One pass over the training sequences in batches of ``train.batch_size`` users (the
    trainer's generator orders them and draws masks and negatives, so a resumed run repeats)."""
    from tqdm.auto import tqdm

    from mrs.train.data import n_batches

    data: SequenceData = tr.seq
    model, tc = tr.model, tr.cfg.train
    model.train()
    model.on_epoch_start(epoch, tr.generator)
    s = data.train
    sums: dict[str, float] = {}
    nb = n_batches(len(s), tc.batch_size)
    bar = tqdm(bucketed_batches(s, tc.batch_size, tr.generator, tr.ds.n_items), total=nb,
               desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False, dynamic_ncols=True)
    for step, idx in enumerate(bar):
        parts = train_step_seq(tr, idx, f"epoch {epoch + 1}, batch {step + 1}/{nb}")
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        if step % 20 == 0:
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
    return {k: v / nb for k, v in sums.items()}


def train_step_seq(tr, idx: Tensor, where: str = "step 1") -> dict[str, float]:
    """One optimiser step on the training sequence rows ``idx``; returns the loss and its parts."""
    s, model, tc, mc, dev = tr.seq.train, tr.model, tr.cfg.train, tr.cfg.model, tr.device
    # left-padded rows: drop the columns that are padding in every row of the batch
    width = int((s.items[idx] != tr.ds.n_items).sum(1).max())
    batch = tuple(x[idx][:, -width:].to(dev) for x in (s.inputs, s.targets, s.modes, s.items))
    batch = (s.users[idx].to(dev), *batch, s.first[idx].to(dev), s.first_modes[idx].to(dev))
    loss, parts = sequence_loss(model, batch, tr.generator, mc.seq_mask_prob, tc.negatives,
                                tc.n_candidates, tc.hard, tc.temperature)
    if not torch.isfinite(loss):
        raise MrsError(f"loss is {loss.item()} at {where}; stopped. Lower train.lr or raise model.reg")
    tr.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    tr.optimizer.step()
    return {"loss": loss.item(), **parts}
