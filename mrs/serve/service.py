r"""One recommendation code path for the CLI, the HTTP server and ``mrs demo``.

Retrieval (``retrieval``):

- ``exact``: ``q @ I.T`` over the whole catalogue, then top-k: the trained model's own full ranking.
- ``folded``: the CP query ``q = u ⊙ M_1[m_1] ⊙ …`` is one vector, so inner-product ANN over the
  item factors with ``q`` *is* the CP ranking up to ANN error; the candidates are rescored exactly.
- ``two_stage`` (the paper's production path): ANN with the embedding-only query ``u`` gives
  ``candidates`` items, which are reranked by the exact CP score.

Filters: ``exclude_seen`` drops the user's items (all splits at export); ``restrict`` limits the
answer to an item subset (ranked exactly over that subset: a subset is small next to the
catalogue, and ANN with a filter loses recall). Items added while serving are few, so they are
always scored exactly and merged with the ANN candidates. An unknown user gets the most popular
items of the query's context (``"fallback": "popular"``). ``explore`` (ucb / thompson,
:mod:`mrs.serve.explore`) perturbs every item's score, so it always ranks exactly.

Sequential user encoders (:mod:`mrs.serve.sequential`): a request's ``history`` of raw item ids
gives the state that replaces the user row ``u`` in ``q`` (and in two-stage's ANN query); with
``exclude_seen`` the history's items are dropped. A history wins over a ``user`` given with it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mrs.errors import MrsError
from mrs.eval.ranking import Csr
from mrs.serve.index import AnnIndex, IndexSpec
from mrs.serve.model import ServedModel

Retrieval = Literal["exact", "folded", "two_stage"]
RETRIEVALS = ("exact", "folded", "two_stage")


@dataclass
class Ranked:
    """Top-k of a batch of queries: item indices ``(B, k)`` (-1 = none) and their scores."""

    items: np.ndarray
    scores: np.ndarray


class RecommendService:
    """Answers requests from a :class:`ServedModel` (and its ANN index, for the ANN modes)."""

    def __init__(self, model: ServedModel, index: AnnIndex | None = None,
                 retrieval: Retrieval = "folded", candidates: int = 300):
        if retrieval != "exact" and index is None:
            raise MrsError(f"retrieval: {retrieval!r} needs an ANN index")
        self.model, self.index, self.retrieval, self.candidates = model, index, retrieval, candidates
        self._seen = Csr(model.seen_indptr, model.seen_indices)
        self.counts = model.item_counts.astype(np.float64)  # observations per item (exploration)
        self.scale = float(np.sqrt((model.item_np.astype(np.float64) ** 2).mean()))  # ŝ
        self._text_encoder = None  # loaded on the first new item sent as raw text
        self._text_lock = threading.Lock()

    @classmethod
    def open(cls, model_dir: str | Path, retrieval: Retrieval = "folded", spec: IndexSpec = IndexSpec(),
             candidates: int = 300) -> "RecommendService":
        """Load a model directory; read its ANN index (or build one in memory) unless ``exact``."""
        model = ServedModel.load(model_dir)
        index = None
        if retrieval != "exact":
            index = AnnIndex.for_model(model.root, model.manifest["files"], model.item.numpy(), spec)
        return cls(model, index, retrieval, candidates)

    # ------------------------------------------------------------------ ranking
    def rank(self, users: np.ndarray, labels: dict[str, str], k: int, exclude_seen: bool = False,
             restrict: np.ndarray | None = None, retrieval: Retrieval | None = None,
             explore: str = "none", explore_strength: float = 1.0,
             generator: torch.Generator | None = None, rows: torch.Tensor | None = None,
             seen: Csr | None = None) -> Ranked:
        """Top-k for known user indices ``users (B,)`` under one set of mode labels.
        ``explore`` (:mod:`mrs.serve.explore`) ranks exactly, with a bonus or posterior sample.
        ``rows (B, R)`` replace the user rows (history states) and ``seen`` the seen-items table
        (``users`` then index its rows)."""
        m, retrieval = self.model, retrieval or self.retrieval
        if explore != "none":
            retrieval = "exact"
        added = m.added  # one snapshot per call
        base = int(m.item.shape[0])
        seen = self._seen if seen is None else seen
        q = m.query(users, labels, rows)  # (B, R)
        n_excl = int(np.diff(seen.indptr)[users].max()) if exclude_seen and len(users) else 0
        if restrict is not None:
            if explore != "none":
                raise MrsError("explore: cannot be combined with restrict (yet)")
            return self._rerank(q, users, np.asarray(restrict, np.int64)[None, :].repeat(len(users), 0),
                                k, exclude_seen, added, seen)
        if retrieval == "exact":
            scores = q @ m.item.T  # (B, I): the model's full ranking
            if len(added.ids):
                scores = torch.cat([scores, q @ torch.from_numpy(added.factors).T], 1)
            if explore != "none":
                from mrs.serve.explore import explore_scores

                counts = np.concatenate([self.counts, np.zeros(len(added.ids), np.float32)])
                scores = explore_scores(scores, q, counts, self.scale, explore, explore_strength, generator)
            if exclude_seen:
                _mask(scores, seen, users)
            kk = min(k, scores.shape[1])
            s, idx = torch.topk(scores, kk, dim=1)
            return _finish(idx.numpy(), s.numpy(), k)
        if self.index is None:
            raise MrsError(f"retrieval: {retrieval!r} needs an ANN index (this server runs exact only)")
        if retrieval == "folded":
            cand = self.index.search(q.numpy(), k + n_excl)
        elif retrieval == "two_stage":
            u = m.user[torch.as_tensor(users)] if rows is None else rows  # the embedding-only query
            cand = self.index.search(u.numpy(), self.candidates + n_excl)
        else:
            raise MrsError(f"retrieval: unknown {retrieval!r} ({' | '.join(RETRIEVALS)})")
        if len(added.ids):
            extra = np.arange(base, base + len(added.ids))[None, :].repeat(len(users), 0)
            cand = np.concatenate([cand, extra], 1)
        return self._rerank(q, users, cand, k, exclude_seen, added, seen)

    def _rerank(self, q: torch.Tensor, users: np.ndarray, cand: np.ndarray, k: int,
                exclude_seen: bool, added, seen: Csr) -> Ranked:
        """Exact CP scores of candidates ``cand (B, C)`` (-1 = empty slot), masked, top-k.
        NumPy throughout: for one request of a few hundred candidates torch's per-op overhead
        is most of the time."""
        base = int(self.model.item.shape[0])
        valid = cand >= 0
        rows = self.model.item_np[np.where(valid & (cand < base), cand, 0)]  # (B, C, R)
        if len(added.ids):
            new = cand >= base
            rows[new] = added.factors[cand[new] - base]
        qn = q.numpy()
        scores = np.einsum("br,bcr->bc", qn, rows) if len(qn) > 1 else (rows[0] @ qn[0])[None]  # (B, C)
        bad = ~valid
        if exclude_seen:
            pos, cols = seen.gather(users)
            if len(pos):
                n = base + len(added.ids)
                keys = pos * n + cols  # sorted: rows ascending, columns sorted within a row
                probe = np.arange(len(users))[:, None] * n + cand
                loc = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
                bad |= keys[loc] == probe
        scores[bad] = -np.inf
        kk = min(k, scores.shape[1])
        j = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < scores.shape[1] else \
            np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        part = np.take_along_axis(scores, j, 1)
        order = np.argsort(-part, axis=1, kind="stable")
        j = np.take_along_axis(j, order, 1)
        return _finish(np.take_along_axis(cand, j, 1), np.take_along_axis(scores, j, 1), k)

    # ------------------------------------------------------------------ requests by raw id
    def recommend(self, user: str | None, modes: dict[str, str | None] | None = None, k: int = 12,
                  exclude_seen: bool = False, restrict: list[str] | None = None,
                  retrieval: Retrieval | None = None, history: list[str] | None = None,
                  explore: str = "none", explore_strength: float = 1.0) -> dict:
        """One request by raw ids -> ``{"user", "items": [{"id", "score"}], "modes",
        "retrieval", "fallback"}``. Errors are :class:`MrsError` naming the field.

        ``history`` (sequential models only): raw item ids, oldest first. Its state replaces the
        user's (when both are given the history wins, for ``exclude_seen`` too: it then drops
        the history's items); unknown ids are skipped and counted (``"history_unknown"``), and
        a history with no known item gets the learned no-history state."""
        out = self.recommend_batch([user], modes, k, exclude_seen, restrict, retrieval, history=history,
                                   explore=explore, explore_strength=explore_strength)
        return out[0]

    def recommend_batch(self, users: list[str | None], modes: dict[str, str | None] | None = None,
                        k: int = 12, exclude_seen: bool = False, restrict: list[str] | None = None,
                        retrieval: Retrieval | None = None, history: list[str] | None = None,
                        explore: str = "none", explore_strength: float = 1.0) -> list[dict]:
        m = self.model
        if history is not None and m.history_encoder is None:
            raise MrsError("history: model has no sequential user encoder "
                           f"(user_encoder={m.manifest.get('user_encoder')!r}); send 'user' instead")
        labels = m.resolve_modes(modes or {})
        self.check_k(k)
        retrieval = retrieval or self.retrieval
        if retrieval not in RETRIEVALS:
            raise MrsError(f"retrieval: unknown {retrieval!r} ({' | '.join(RETRIEVALS)})")
        from mrs.serve.explore import EXPLORES

        if explore not in EXPLORES:
            raise MrsError(f"explore: unknown {explore!r} ({' | '.join(EXPLORES)})")
        if explore != "none":
            retrieval = "exact"
        sub = None
        if restrict is not None:
            # a set: a repeated id would otherwise be ranked (and returned) once per copy
            sub = np.array(list(dict.fromkeys(self._item(x, "restrict") for x in restrict)), dtype=np.int64)
            if len(sub) == 0:
                raise MrsError("restrict: empty item list")
        if history is not None:  # one history for every entry: its state, its items as "seen"
            return self._recommend_history(users, history, labels, k, exclude_seen, sub, retrieval,
                                           explore, explore_strength)
        idx = np.array([m.user_index.get(u, -1) if u is not None else -1 for u in users], dtype=np.int64)
        known = idx >= 0
        out: list[dict] = [None] * len(users)  # type: ignore[list-item]
        if known.any():
            r = self.rank(idx[known], labels, k, exclude_seen, sub, retrieval, explore, explore_strength)
            for row, pos in enumerate(np.flatnonzero(known)):
                out[pos] = self._response(users[pos], r.items[row], r.scores[row], labels, retrieval, None)
                if explore != "none":
                    out[pos]["explore"] = {"kind": explore, "strength": explore_strength}
        if (~known).any():
            pop = m.popular(labels)
            if sub is not None:
                pop = pop[np.isin(pop, sub)]
            top = pop[:k]
            counts = m.item_counts if m.counts_by_mode0 is None or labels.get(m.mode_names[0]) == "*" \
                else m.counts_by_mode0[m.mode_index[m.mode_names[0]][labels[m.mode_names[0]]]]
            for pos in np.flatnonzero(~known):
                out[pos] = self._response(users[pos], top, counts[top], labels, "popular", "popular")
        return out

    def _recommend_history(self, users: list[str | None], history: list[str], labels: dict[str, str],
                           k: int, exclude_seen: bool, sub: np.ndarray | None, retrieval: Retrieval,
                           explore: str, explore_strength: float) -> list[dict]:
        """Rank with the state of ``history`` in place of a user row (see :meth:`recommend`)."""
        m = self.model
        idx, n_unknown = m.history_indices(history)
        state = m.history_states([idx])  # (1, R)
        seen = Csr.from_pairs(np.zeros(len(idx), np.int64), idx, 1)  # row 0: the history's items
        rows = np.zeros(len(users), np.int64)
        r = self.rank(rows, labels, k, exclude_seen, sub, retrieval, explore, explore_strength,
                      rows=state.repeat(len(users), 1), seen=seen)
        out = []
        for b, user in enumerate(users):
            res = self._response(user, r.items[b], r.scores[b], labels, retrieval, None)
            res["history_known"], res["history_unknown"] = len(idx), n_unknown
            if explore != "none":
                res["explore"] = {"kind": explore, "strength": explore_strength}
            out.append(res)
        return out

    def _response(self, user, items: np.ndarray, scores: np.ndarray, labels, retrieval, fallback) -> dict:
        keep = items >= 0
        return {"user": user,
                "items": [{"id": self.model.item_id(int(i)), "score": float(s)}
                          for i, s in zip(items[keep], scores[keep])],
                "modes": dict(labels), "retrieval": retrieval, "fallback": fallback}

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.model.n_items:
            raise MrsError(f"k: must be in 1..{self.model.n_items} (the catalogue size), got {k}")

    def _item(self, raw: str, field: str) -> int:
        j = self.model.item_idx(str(raw))
        if j is None:
            raise MrsError(f"{field}: unknown item {raw!r}")
        return j

    # ------------------------------------------------------------------ items
    def similar(self, item: str, k: int = 12) -> dict:
        """Items with the largest inner product with the item's factor (exact; the item itself excluded)."""
        j = self._item(item, "id")
        self.check_k(k)
        m = self.model
        added = m.added
        v = m.item_rows(np.array([j]))  # (1, R)
        scores = torch.cat([(v @ m.item.T)[0], (v @ torch.from_numpy(added.factors).T)[0]])
        scores[j] = float("-inf")
        s, idx = torch.topk(scores, min(k, len(scores) - 1))
        return {"id": item, "items": [{"id": m.item_id(int(i)), "score": float(x)} for i, x in zip(idx, s)]}

    def add_item(self, item: str, features: dict[str, list[float]] | None = None,
                 text: str | None = None) -> dict:
        """Project a new item's content into the factor space and add it to the catalogue.
        ``text``: raw text, embedded with the encoder that made the model's text store (when it
        loads here, offline)."""
        feats = {k: np.asarray(v, np.float32) for k, v in (features or {}).items()}
        if text is not None:
            name, vec = self.embed_text(text)
            if name in feats:
                raise MrsError(f"text: give either text or features.{name}, not both")
            feats[name] = vec
        factor = self.model.project_content(feats)
        j = self.model.add_item(str(item), factor)
        return {"id": item, "index": j, "n_items": self.model.n_items}

    def embed_text(self, text: str) -> tuple[str, np.ndarray]:
        """``(text modality name, its vector)`` from the model's text encoder, loaded once."""
        spec = [m for m in (self.model.manifest.get("content") or {}).get("modalities", [])
                if m.get("modality") == "text"]
        if not spec:
            raise MrsError("text: the model uses no text features; send features instead")
        m = spec[0]
        with self._text_lock:
            if self._text_encoder is None:
                from mrs.features.text import TextEncoder

                try:
                    self._text_encoder = TextEncoder(m["encoder"], max_length=m.get("max_length", 128))
                except MrsError as e:
                    raise MrsError(f"text: the model's text encoder is not available here ({e})") from None
            enc = self._text_encoder
        vec = enc(**enc.tokenize([text]))[0].numpy()
        return m["name"], vec

    def health(self) -> dict:
        m = self.model
        return {"status": "ok", "checksum": m.checksum, "n_users": len(m.user_ids),
                "n_items": m.n_items, "n_added_items": len(m.added.ids), "dim": m.dim,
                "modes": {n: len(l) for n, l in m.mode_labels.items()}, "retrieval": self.retrieval,
                "index": None if self.index is None else self.index.spec.name(self.index.n_items),
                "sequential": bool(m.manifest.get("sequential")),
                "content_projection": bool(m.content)}


def _mask(scores: torch.Tensor, seen: Csr, users: np.ndarray) -> None:
    pos, cols = seen.gather(users)
    if len(pos):
        scores[torch.from_numpy(pos), torch.from_numpy(cols)] = float("-inf")


def _finish(items: np.ndarray, scores: np.ndarray, k: int) -> Ranked:
    """Masked entries (score -inf) become -1; pad to k columns."""
    items = np.where(np.isfinite(scores), items, -1)
    if items.shape[1] < k:
        pad = k - items.shape[1]
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return Ranked(items.astype(np.int64), scores)
