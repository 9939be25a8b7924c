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
  such item get an all-padding history (a learned "no history" state); they are counted.
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
    knows at export), padded with ``n_items``."""
    inter = ds.interactions
    sp = inter["split"].to_numpy()[order]
    limit = {**SPLITS, "train": SPLITS["valid"], "all": max(SPLITS.values()) + 1}[split]
    keep = sp < limit
    users = inter["user"].to_numpy()[order][keep].astype(np.int64)
    items = inter["item"].to_numpy()[order][keep].astype(np.int64)
    hist = _left_pad(users, items, ds.n_users, length, ds.n_items)
    n_empty = int((np.bincount(users, minlength=ds.n_users) == 0).sum())
    return torch.from_numpy(hist), n_empty


@dataclass
class SeqTrain:
    """Training sequences: one row per user with >= 2 train items."""

    users: Tensor    # (S,) long
    inputs: Tensor   # (S, L) long, padded with n_items
    targets: Tensor  # (S, L) long, -1 where there is no target
    modes: Tensor    # (S, L, k) long, the target interaction's mode values (0 on padding)
    items: Tensor    # (S, L) long, the last L train items themselves (bert4rec's input), padded

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
    return SeqTrain(torch.from_numpy(rows), torch.from_numpy(inp), torch.from_numpy(tgt),
                    torch.from_numpy(np.ascontiguousarray(seq_modes[rows, 1:])),
                    torch.from_numpy(seq[rows, 1:]))


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
def sequence_loss(model, batch: tuple[Tensor, ...], loss: str, generator: torch.Generator,
                  n_negatives: int = 100, mask_prob: float = 0.2, negatives: str = "uniform",
                  candidates: int = 16, hard: str = "hardest") -> tuple[Tensor, dict[str, float]]:
    """Next-item (sasrec) or cloze (bert4rec) loss of one batch of training sequences.

    With ``q_n = s_n ⊙ Π_j M_j[m_{n,j}]`` the CP query of position ``n`` (its state folded with its
    target's modes) and ``y_n`` the target item:

    - ``ce``: full softmax ``-log softmax(q_n · Qᵀ)[y_n]`` over all items (the strong SASRec
      baseline);
    - ``sampled_softmax``: the softmax over ``y_n`` and ``n_negatives`` uniform items (accidental
      hits of ``y_n`` masked out; uniform proposals need no log-Q correction);
    - ``bpr``: ``-log σ(q_n·Q[y_n] − q_n·Q[j])`` with one uniform negative ``j``, or the hardest /
      softmax-drawn of ``candidates`` uniform ones (``train.negatives=dynamic``).

    Plus ``λ · Σ‖touched ID rows‖² / N`` (mode rows towards one, as the BPR path) and the
    fusion's own terms (gated fusion's alignment) over the touched items.
    """
    users, inputs, targets, modes, items = batch
    emb = model.encode()
    item_emb = emb[1]                                                     # (I, R)
    ue = model.user_encoder
    if ue.causal:
        states = ue.encode_seq(inputs, item_emb)                          # (B, L, R)
        tgt_full = targets
    else:  # cloze: mask a share of the real positions (at least one per row), predict them
        real = items != model.n_items
        masked = (torch.rand(items.shape, generator=generator).to(items.device) < mask_prob) & real
        last = real.long().cumsum(1).argmax(1)                            # the last real position
        none = ~masked.any(1)
        masked[none, last[none]] = True
        states = ue.encode_seq(items, item_emb, masked=masked)
        tgt_full = items.masked_fill(~masked, -1)
    valid = tgt_full >= 0
    q = model.scorer.query(states[valid], modes[valid])                   # (N, R)
    tgt = tgt_full[valid]                                                 # (N,)
    n, n_items = tgt.shape[0], model.n_items
    if loss == "ce":
        main = torch.nn.functional.cross_entropy(model.scorer.rank_all(q, item_emb), tgt)
        touched = tgt
    elif loss == "sampled_softmax":
        neg = torch.randint(n_items, (n, n_negatives), generator=generator).to(tgt.device)  # (N, K)
        pos_s = model.scorer.score(q, item_emb[tgt])                      # (N,)
        neg_s = model.scorer.score(q, item_emb[neg]).masked_fill(neg == tgt[:, None], float("-inf"))
        logits = torch.cat([pos_s[:, None], neg_s], 1)                    # (N, 1 + K)
        main = torch.nn.functional.cross_entropy(logits, torch.zeros_like(tgt))
        touched = torch.cat([tgt, neg.reshape(-1)])
    elif loss == "bpr":
        m = candidates if negatives == "dynamic" else 1
        cand = torch.randint(n_items, (n, m), generator=generator).to(tgt.device)  # (N, M)
        if m > 1:
            with torch.no_grad():
                s = model.scorer.score(q, item_emb[cand])
                idx = (s.argmax(1, keepdim=True) if hard == "hardest"
                       else torch.multinomial(torch.softmax(s.float(), 1), 1, generator=None))
            cand = cand.gather(1, idx)
        neg = cand[:, 0]
        from mrs.losses import bpr_loss
        main = bpr_loss(model.scorer.score(q, item_emb[tgt]), model.scorer.score(q, item_emb[neg]))
        touched = torch.cat([tgt, neg])
    else:
        raise MrsError(f"config key 'model.seq_loss': {loss!r} is not one of "
                       f"['ce', 'sampled_softmax', 'bpr']")
    from mrs.losses import l2_reg
    ego = [model.item_emb.weight[touched], *(r - 1.0 for r in model.scorer.mode_rows(modes[valid]))]
    l2 = l2_reg(*ego, batch_size=n)
    total = main + model.reg * l2
    parts = {loss: main.item(), "l2": l2.item()}
    for name, term in model.fusion.aux_losses(touched, model.item_emb.weight, model.features()).items():
        total = total + term
        parts[name] = term.item()
    return total, parts


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
    model, tc, mc = tr.model, tr.cfg.train, tr.cfg.model
    model.train()
    model.on_epoch_start(epoch, tr.generator)
    s = data.train
    dev = tr.device
    sums: dict[str, float] = {}
    nb = n_batches(len(s), tc.batch_size)
    bar = tqdm(bucketed_batches(s, tc.batch_size, tr.generator, tr.ds.n_items), total=nb,
               desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False, dynamic_ncols=True)
    lengths = (s.items != tr.ds.n_items).sum(1)                           # (S,) real items per row
    for step, idx in enumerate(bar):
        # left-padded rows: drop the columns that are padding in every row of the batch
        width = int(lengths[idx].max())
        batch = tuple(x[idx][:, -width:].to(dev) if x.dim() > 1 else x[idx].to(dev)
                      for x in (s.users, s.inputs, s.targets, s.modes, s.items))
        loss, parts = sequence_loss(model, batch, mc.seq_loss, tr.generator, mc.seq_negatives,
                                    mc.seq_mask_prob, tc.negatives, tc.n_candidates, tc.hard)
        if not torch.isfinite(loss):
            raise MrsError(f"loss is {loss.item()} at epoch {epoch + 1}, batch {step + 1}/{nb}; "
                           f"stopped. Lower train.lr or raise model.reg")
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tr.optimizer.step()
        for k, v in {"loss": loss.item(), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return {k: v / nb for k, v in sums.items()}
