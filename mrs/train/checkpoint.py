"""Checkpoints: everything needed to continue a run bit-for-bit, written atomically.

``last.pt`` (rewritten each epoch) holds model, optimizer, every RNG state (python, numpy,
torch CPU/CUDA and the trainer's own data-order generator), the epoch counter, the best
validation value so far and the early-stopping counter. ``best.pt`` holds the weights of the
best validation epoch. A run killed mid-write leaves the previous file intact (rename-on-success).

Both hold tensors and plain data only (numpy's RNG state is stored as a tensor plus numbers), so
they are read with ``torch.load(weights_only=True)`` (``mrs.safe_load``): a crafted checkpoint
cannot run code.

Every file written here carries ``"checksum"``: the sha256 of its content (``payload_checksum``:
each key, number, string and tensor's dtype, shape and bytes, in order), verified on every load.
torch's zip reader does not check its CRCs, so without it a damaged file (zeroed or flipped bytes
inside a tensor) loads as a different model. A file written before checksums simply has none.
Writes go through a Python file object, so a full disk is an ``OSError`` that ``mrs.io`` reports
as "no space left on device" (a path makes torch's C++ writer fail with an opaque
``enforce fail at inline_container.cc``).
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrs.errors import MrsError
from mrs.io import atomic_path
from mrs.safe_load import load_torch_file

LAST = "last.pt"
BEST = "best.pt"
FINAL = "final.pt"  # the train + valid refit's weights (train.final_fit), when there is one
CHECKSUM = "checksum"


@dataclass
class TrainState:
    """Counters that must survive a restart."""

    epoch: int = 0                  # epochs completed
    best_value: float = float("-inf")  # best validation select_metric so far
    best_epoch: int = -1            # 1-based epoch that reached it
    bad_evals: int = 0              # evaluations since the last improvement (early stopping)
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state, as tensors and primitives only (loadable with ``weights_only=True``)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    py, npy = states["python"], states["numpy"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    generator.set_state(states["generator"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: TrainState, generator: torch.Generator,
                    stateful: dict[str, Any] | None = None) -> None:
    """``stateful``: more objects with ``state_dict()`` (e.g. the negative sampler's RNG).
    ``optimizer`` is None for a closed-form model (no parameters)."""
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "state": asdict(state),
        "rng": rng_states(generator),
        "stateful": {k: v.state_dict() for k, v in (stateful or {}).items()},
    }
    _save(path, payload)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    generator: torch.Generator, stateful: dict[str, Any] | None = None) -> TrainState:
    """Restore model, optimizer and RNGs from ``path``; return the counters."""
    payload = _load(path)  # weights only: never runs code from the file
    _load_model(path, model, payload)
    try:
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
        set_rng_states(payload["rng"], generator)
        for k, obj in (stateful or {}).items():
            obj.load_state_dict(payload["stateful"][k])
        return TrainState(**payload["state"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise MrsError(f"{path}: not a complete mrs checkpoint ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _load_model(path: Path, model: torch.nn.Module, payload: Any) -> None:
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise MrsError(f"{path}: not an mrs checkpoint (no 'model' state dict)")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise MrsError(f"{path}: checkpoint does not fit this model (config changed?): "
                       f"{str(e).splitlines()[0]}") from None


def save_weights(path: Path, model: torch.nn.Module, epoch: int) -> None:
    _save(path, {"model": model.state_dict(), "epoch": epoch})


def load_weights(path: Path, model: torch.nn.Module) -> int:
    """Load weights (``best.pt`` or any file of ``save_weights``) into ``model``; return the epoch
    they come from."""
    if not path.is_file():
        raise MrsError(f"{path}: no checkpoint (was the run trained to at least one evaluation?)")
    payload = _load(path)
    _load_model(path, model, payload)
    return int(payload.get("epoch", -1))


def _save(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` plus its checksum, atomically, through a Python file object (see the docstring)."""
    payload = {**payload, CHECKSUM: payload_checksum(payload)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def _load(path: Path) -> Any:
    """Read ``path`` (weights only) and verify its checksum when it has one."""
    payload = load_torch_file(path, "checkpoint")
    if isinstance(payload, dict) and CHECKSUM in payload:
        body = {k: v for k, v in payload.items() if k != CHECKSUM}
        if payload_checksum(body) != payload[CHECKSUM]:
            raise MrsError(f"{path}: damaged: its content does not match the sha256 checksum stored "
                           f"in it (a disk or copy error); restore it from a backup or retrain")
    return payload


def payload_checksum(obj: Any) -> str:
    """sha256 of a checkpoint payload: keys, scalars, and each tensor's dtype, shape and bytes."""
    h = hashlib.sha256()
    _digest(obj, h)
    return h.hexdigest()


def _digest(obj: Any, h: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        t = t.to_dense() if t.layout != torch.strided else t
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            _digest(k, h)
            _digest(v, h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for v in obj:
            _digest(v, h)
    else:  # str, int, float, bool, None, torch.Size elements: their repr is exact and stable
        h.update(f"S{type(obj).__name__}:{obj!r};".encode())
