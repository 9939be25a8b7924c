r"""Serving sequential user encoders (``sasrec``, ``bert4rec``): a history of items gives the state
that takes the user row's place in the folded CP query.

    s = f_θ(Q[i_{L}], …, Q[i_1])            (R,)   the transformer over the last L known items
    q = s ⊙ M_1[m_1] ⊙ … ⊙ M_k[m_k]                 then exactly as for a static user row

Export (:func:`export_sequential`) writes the transformer's weights (positions, layer norm, the
``nn.TransformerEncoder`` blocks, bert4rec's [MASK] token: the user encoder's ``state_dict`` minus
the ``emb`` ego table, which only a graph encoder reads at training time) under the prefix
``seq.`` into ``factors.safetensors``, and the manifest entry ``"sequential": {"kind",
"seq_len", "blocks", "heads", "dim", "dropout"}``. The exported ``user`` rows are every known
user's state after their last ``seq_len`` items over *all* splits (train, valid and test: what a
production server knows), in the training order and tie rule of :mod:`mrs.train.sequences`,
computed once at export with the model's own ``query_rows``.

Serving (:class:`HistoryEncoder`) rebuilds the same ``SASRecUserEncoder`` / ``BERT4RecUserEncoder``
class (eval mode: no dropout), with no dataset and no training code. The token table is the
served ``item`` rows (the model's item output, as in training), followed by the items added
while serving (their content-projected factors), so an added item may appear in a history.
Unknown ids are skipped and counted; a history with no known item gets the learned
"no history" state (an all-padding sequence, as for a training user with no earlier item).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from mrs.errors import MrsError

PREFIX = "seq."  # tensor names of the transformer's weights in factors.safetensors


def export_sequential(model: Any, ds: Any, cfg: Any, item: torch.Tensor,
                      chunk: int = 4096) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """``(user states (U, R), seq.* tensors, manifest entry)`` of a trained sequential model.

    ``item (I, R)``: the model's item output (the token table). Each user's history is their last
    ``seq_len`` items over all splits, ordered by ``ts`` then ``model.seq_ties`` (as training)."""
    from tqdm.auto import tqdm

    from mrs.train.sequences import histories, time_order  # training's order and padding

    ue = model.user_encoder
    order = time_order(ds, cfg.model.seq_ties, cfg.train.seed)
    hist, n_empty = histories(ds, "all", ue.seq_len, order)  # (U, L) over every split
    ue.set_history(hist)
    rows = []
    with torch.no_grad():
        for start in tqdm(range(0, ds.n_users, chunk), desc="user states", leave=False):
            u = torch.arange(start, min(start + chunk, ds.n_users))
            rows.append(ue.query_rows(u, None, item))  # (B, R); the user output is unused
    state = torch.cat(rows).contiguous().numpy() if rows else np.zeros((0, item.shape[1]), np.float32)
    weights = {PREFIX + k: v.detach().cpu().contiguous().numpy()
               for k, v in ue.state_dict().items() if not k.startswith("emb.")}
    mc = cfg.model
    spec = {"kind": cfg.model.user_encoder, "seq_len": int(mc.seq_len), "blocks": int(mc.seq_blocks),
            "heads": int(mc.seq_heads), "dim": int(item.shape[1]), "dropout": float(mc.seq_dropout),
            "ties": mc.seq_ties, "user_rows": "state after the last seq_len items of all splits",
            "users_without_history": n_empty}
    return state, weights, spec


class HistoryEncoder:
    """The exported transformer, rebuilt for inference: raw-id histories -> states ``(B, R)``."""

    def __init__(self, spec: dict[str, Any], tensors: dict[str, np.ndarray], n_items: int):
        from mrs.models.base import USERS

        self.spec, self.seq_len = spec, int(spec["seq_len"])
        cls = USERS.get(spec["kind"]) if spec.get("kind") in USERS else None
        if not getattr(cls, "sequential", False):
            raise MrsError(f"manifest.json: sequential.kind {spec.get('kind')!r} is not a sequential user encoder")
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the global RNG alone
            enc = cls(1, n_items, int(spec["dim"]), self.seq_len, int(spec["blocks"]), int(spec["heads"]),
                      float(spec["dropout"]))
        weights = {k[len(PREFIX):]: torch.from_numpy(np.asarray(v)) for k, v in tensors.items()
                   if k.startswith(PREFIX)}
        res = enc.load_state_dict(weights, strict=False)
        missing = [k for k in res.missing_keys if not k.startswith("emb.")]
        if missing or res.unexpected_keys:
            bad = (missing or res.unexpected_keys)[0]
            raise MrsError(f"factors.safetensors: sequential weights do not fit {spec['kind']} "
                           f"({'missing' if missing else 'unexpected'} tensor {PREFIX + bad!r})")
        self.enc = enc.eval()  # read-only from here: several threads may call states() at once

    def states(self, histories: list[np.ndarray], item_rows: Callable[[np.ndarray], torch.Tensor]
               ) -> torch.Tensor:
        """Histories of item indices (oldest first) -> states ``(B, R)`` after each one's last
        ``seq_len`` items. ``item_rows(idx) -> (n, R)``: token rows by catalogue index.

        Only the rows the histories use are gathered, into a small local table (ids renumbered,
        padding = its length): the transformer reads the same token values as with the whole
        catalogue, without copying a million-row table per request."""
        tails = [np.asarray(h, dtype=np.int64)[-self.seq_len:] for h in histories]
        uniq, local = np.unique(np.concatenate([np.zeros(0, np.int64), *tails]), return_inverse=True)
        table = item_rows(uniq)  # (n, R)
        hist = np.full((len(tails), self.seq_len), len(uniq), dtype=np.int64)  # (B, L), left-padded
        start = 0
        for b, h in enumerate(tails):
            if len(h):
                hist[b, -len(h):] = local[start:start + len(h)]
            start += len(h)
        with torch.no_grad():
            return self.enc.history_rows(torch.from_numpy(hist), table)
