r"""A model directory loaded for serving: factors, id maps, mode labels, and the CP query.

    q = U[u] ⊙ M_1[m_1] ⊙ … ⊙ M_k[m_k]     (R,)        the folded CP query
    ŷ(u, i, m) = q · I[i]                                one dot product per item

A mode left unset in a request uses the train-frequency-weighted mix of its factor rows,
``M̄ = Σ_m p(m) M[m]``: because the score is multilinear, ``q · I[i]`` with ``M̄`` is the expected
score over that mode's train distribution (reported as ``"*"`` in the response).

Items added while serving (``add_item``) live in a separate list that is replaced, never mutated
(copy then swap one reference), so a concurrent reader sees either the old or the new catalogue.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrs.errors import MrsError
from mrs.io import file_checksum
from mrs.serve.export import FACTORS, FORMAT, ITEM_IDS, MANIFEST, USER_IDS

MIX = "*"  # label of "no value given": the train-frequency-weighted mix of a mode's rows


@dataclass(frozen=True)
class Added:
    """Items added while serving (immutable; replaced as a whole on each add)."""

    ids: tuple[str, ...] = ()
    factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (A, R)


# what ServedModel reads from the manifest, with its JSON type
MANIFEST_KEYS = {"format": str, "files": dict, "checksum": str, "n_users": int, "n_items": int, "modes": list}


def read_manifest(root: Path) -> dict:
    """``root/manifest.json``, checked: JSON, the keys serving reads, and every ``files`` entry a
    relative path that resolves inside ``root`` (a ``../../etc/passwd`` entry is refused before
    anything is opened). Each fault is a one-line ``MrsError`` naming the file."""
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise MrsError(f"{mpath}: not found (is {root} a model directory from `mrs export`?)")
    try:
        manifest = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise MrsError(f"{mpath}: not valid JSON ({e}); re-export the model") from None
    if not isinstance(manifest, dict):
        raise MrsError(f"{mpath}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise MrsError(f"{mpath}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind):
            raise MrsError(f"{mpath}: {key!r} missing or not a {kind.__name__}; re-export the model")
    inside = root.resolve()
    for name, digest in manifest["files"].items():
        target = (root / name).resolve()
        if Path(name).is_absolute() or inside not in target.parents or not isinstance(digest, str):
            raise MrsError(f"{mpath}: files entry {name!r} is not a file inside {root}; refusing to read it")
    if not {FACTORS, USER_IDS, ITEM_IDS} <= set(manifest["files"]):
        raise MrsError(f"{mpath}: 'files' must list {FACTORS}, {USER_IDS} and {ITEM_IDS}")
    return manifest


class ServedModel:
    """Read-only arrays of one model directory (``load``), plus the added-items list."""

    def __init__(self, root: Path, manifest: dict, tensors: dict[str, np.ndarray],
                 user_ids: list[str], item_ids: list[str]):
        self.root, self.manifest = root, manifest
        self.user = torch.from_numpy(np.asarray(tensors["user"], np.float32))  # (U, R)
        self.item = torch.from_numpy(np.asarray(tensors["item"], np.float32))  # (I, R)
        self.item_np = self.item.numpy()  # the same memory
        self.mode_names = [m["name"] for m in manifest["modes"]]
        self.mode_labels = {m["name"]: m["labels"] for m in manifest["modes"]}
        self.mode_index = {m: {lab: j for j, lab in enumerate(labs)} for m, labs in self.mode_labels.items()}
        self.mode_factors = {m: torch.from_numpy(tensors[f"mode.{m}"]) for m in self.mode_names}
        self.mode_mix = {}
        for m in manifest["modes"]:
            p = np.asarray(m["train_counts"], np.float64)
            p = p / p.sum() if p.sum() > 0 else np.full(len(p), 1 / len(p))
            self.mode_mix[m["name"]] = torch.from_numpy((p @ tensors[f"mode.{m['name']}"]).astype(np.float32))
        self.item_counts = tensors["item_counts"]
        self.counts_by_mode0 = tensors.get("item_counts_by_mode0")
        self.seen_indptr, self.seen_indices = tensors["seen_indptr"], tensors["seen_indices"]
        self.content = {k: tensors[k] for k in ("content_w", "content_b", "content_mean") if k in tensors}
        self.user_ids, self.item_ids = user_ids, item_ids
        self.user_index = {u: j for j, u in enumerate(user_ids)}
        self.item_index = {i: j for j, i in enumerate(item_ids)}
        self.added = Added(factors=np.zeros((0, self.dim), np.float32))
        self._add_lock = threading.Lock()
        self._popular: dict[int, np.ndarray] = {}
        self.history_encoder = None  # sequential models: raw-id history -> state (mrs.serve.sequential)
        if manifest.get("sequential"):
            from mrs.serve.sequential import HistoryEncoder

            self.history_encoder = HistoryEncoder(manifest["sequential"], tensors, len(item_ids))

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, root: str | Path, verify: bool = True) -> "ServedModel":
        """Open a model directory; ``verify`` checks every file's sha256 against the manifest."""
        from safetensors.numpy import load_file

        root = Path(root)
        manifest = read_manifest(root)
        if verify:
            for name, digest in manifest["files"].items():
                if not (root / name).is_file() or file_checksum([root / name]) != digest:
                    raise MrsError(f"{root / name}: missing or its sha256 differs from {MANIFEST}")
        tensors = load_file(str(root / FACTORS))
        users = (root / USER_IDS).read_text().splitlines()
        items = (root / ITEM_IDS).read_text().splitlines()
        if len(users) != manifest["n_users"] or len(items) != manifest["n_items"]:
            raise MrsError(f"{root}: id lists hold {len(users)} users / {len(items)} items, the "
                           f"manifest says {manifest['n_users']} / {manifest['n_items']}")
        return cls(root, manifest, tensors, users, items)

    # ------------------------------------------------------------------ sizes and ids
    @property
    def dim(self) -> int:
        return int(self.item.shape[1])

    @property
    def n_items(self) -> int:
        """Catalogue size, including items added while serving."""
        return int(self.item.shape[0]) + len(self.added.ids)

    @property
    def checksum(self) -> str:
        return self.manifest["checksum"]

    def item_id(self, j: int) -> str:
        base = len(self.item_ids)
        return self.item_ids[j] if j < base else self.added.ids[j - base]

    def item_idx(self, raw: str) -> int | None:
        j = self.item_index.get(raw)
        if j is None and raw in self.added.ids:
            j = len(self.item_ids) + self.added.ids.index(raw)
        return j

    def item_rows(self, idx: np.ndarray) -> torch.Tensor:
        """Factors of items by index, added items included: ``(n, R)``."""
        idx = np.asarray(idx, dtype=np.int64)
        base, added = len(self.item_ids), self.added
        out = self.item_np[np.where(idx < base, idx, 0)]
        new = idx >= base
        out[new] = added.factors[idx[new] - base]
        return torch.from_numpy(out)

    def seen(self, u: int) -> np.ndarray:
        """Every item user ``u`` has (all splits at export time)."""
        return self.seen_indices[self.seen_indptr[u]:self.seen_indptr[u + 1]].astype(np.int64)

    # ------------------------------------------------------------------ the CP query
    def resolve_modes(self, values: dict[str, str | None]) -> dict[str, str]:
        """Labels per mode (unset -> ``"*"``); an unknown mode name or label is an error naming it."""
        for name in values:
            if name not in self.mode_labels:
                raise MrsError(f"{name}: the model has no mode {name!r} (modes: {self.mode_names or 'none'})")
        out = {}
        for name in self.mode_names:
            lab = values.get(name)
            lab = MIX if lab is None else str(lab)
            if lab != MIX and lab not in self.mode_index[name]:
                labs = self.mode_labels[name]
                shown = ", ".join(labs[:12]) + (", ..." if len(labs) > 12 else "")
                raise MrsError(f"{name}: unknown label {lab!r} (known: {shown}, or '*')")
            out[name] = lab
        return out

    def mode_rows(self, labels: dict[str, str]) -> list[torch.Tensor]:
        return [self.mode_mix[m] if labels[m] == MIX else self.mode_factors[m][self.mode_index[m][labels[m]]]
                for m in self.mode_names]

    def query(self, users: np.ndarray, labels: dict[str, str], rows: torch.Tensor | None = None) -> torch.Tensor:
        """``q (B, R) = U[users] ⊙ Π_j M_j[label_j]`` (same operation order as the CP scorer);
        ``rows (B, R)``, when given, replace ``U[users]`` (a sequential model's history states)."""
        q = self.user[torch.as_tensor(np.asarray(users, dtype=np.int64))] if rows is None else rows
        for mode_row in self.mode_rows(labels):
            q = q * mode_row
        return q

    # ------------------------------------------------------------------ histories (sequential models)
    def history_indices(self, raw: list[str]) -> tuple[np.ndarray, int]:
        """Raw item ids (oldest first) -> ``(indices of the known ones, number of unknown ones)``.
        Items added while serving are known (their factors are tokens like any other)."""
        idx = [self.item_idx(str(x)) for x in raw]
        known = np.array([j for j in idx if j is not None], dtype=np.int64)
        return known, len(idx) - len(known)

    def history_states(self, histories: list[np.ndarray]) -> torch.Tensor:
        """States ``(B, R)`` after histories of item indices; they take ``U[u]``'s place."""
        if self.history_encoder is None:
            raise MrsError("history: model has no sequential user encoder "
                           f"(user_encoder={self.manifest.get('user_encoder')!r}); send 'user' instead")
        return self.history_encoder.states(histories, self.item_rows)

    def popular(self, labels: dict[str, str]) -> np.ndarray:
        """Items by train count in the query's first-mode value (overall when it is unset)."""
        key = -1
        if self.counts_by_mode0 is not None and labels.get(self.mode_names[0], MIX) != MIX:
            key = self.mode_index[self.mode_names[0]][labels[self.mode_names[0]]]
        if key not in self._popular:
            counts = self.item_counts if key < 0 else self.counts_by_mode0[key]
            self._popular[key] = np.argsort(-counts, kind="stable")  # ties: lower index first
        return self._popular[key]

    # ------------------------------------------------------------------ new items
    def project_content(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """A new item's factor from its modality vectors (the export's ridge projection). A
        modality not given is filled with the warm items' mean, as training fills items a
        store lacks; at least one must be given."""
        spec = (self.manifest.get("content") or {}).get("modalities")
        if not spec:
            raise MrsError("features: the model has no content projection (it was trained without feature stores)")
        extra = set(feats) - {m["name"] for m in spec}
        if extra:
            raise MrsError(f"features.{sorted(extra)[0]}: the model has no such modality "
                           f"(it uses {', '.join(s['name'] for s in spec)})")
        if not feats:
            raise MrsError(f"features: give a vector for at least one of {', '.join(s['name'] for s in spec)}")
        mu = self.content["content_mean"]
        parts, start = [], 0
        for m in spec:
            seg = slice(start, start + m["dim"])
            start += m["dim"]
            if m["name"] not in feats:
                parts.append(mu[seg])
                continue
            x = np.asarray(feats[m["name"]], dtype=np.float32).reshape(-1)
            if x.shape[0] != m["dim"] or not np.isfinite(x).all():
                raise MrsError(f"features.{m['name']}: expected {m['dim']} finite numbers, got {x.shape[0]}")
            parts.append(x / max(float(np.linalg.norm(x)), 1e-12))
        x = np.concatenate(parts)
        return ((x - mu) @ self.content["content_w"] + self.content["content_b"]).astype(np.float32)

    def add_item(self, raw_id: str, factor: np.ndarray) -> int:
        """Append an item; returns its index. Copy-then-swap: readers never see a partial list."""
        with self._add_lock:
            if self.item_idx(raw_id) is not None:
                raise MrsError(f"id: item {raw_id!r} already exists")
            f = np.concatenate([self.added.factors, factor.reshape(1, -1).astype(np.float32)])
            self.added = Added(self.added.ids + (raw_id,), f)
            return self.n_items - 1
