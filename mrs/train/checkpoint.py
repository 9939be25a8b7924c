"""Checkpoints: everything needed to continue a run bit-for-bit, written atomically.

``last.pt`` (rewritten each epoch) holds model, optimizer, every RNG state (python, numpy,
torch CPU/CUDA and the trainer's own data-order generator), the epoch counter, the best
validation value so far and the early-stopping counter. ``best.pt`` holds the weights of the
best validation epoch. A run killed mid-write leaves the previous file intact (rename-on-success).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrs.errors import MrsError
from mrs.io import atomic_path

LAST = "last.pt"
BEST = "best.pt"


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
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    generator.set_state(states["generator"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: TrainState, generator: torch.Generator,
                    stateful: dict[str, Any] | None = None) -> None:
    """``stateful``: more objects with ``state_dict()`` (e.g. the negative sampler's RNG)."""
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": asdict(state),
        "rng": rng_states(generator),
        "stateful": {k: v.state_dict() for k, v in (stateful or {}).items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, stateful: dict[str, Any] | None = None) -> TrainState:
    """Restore model, optimizer and RNGs from ``path``; return the counters."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file
        raise MrsError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise MrsError(f"{path}: checkpoint does not fit this model (config changed?): "
                       f"{str(e).splitlines()[0]}") from None
    optimizer.load_state_dict(payload["optimizer"])
    set_rng_states(payload["rng"], generator)
    for k, obj in (stateful or {}).items():
        obj.load_state_dict(payload["stateful"][k])
    return TrainState(**payload["state"])


def save_weights(path: Path, model: torch.nn.Module, epoch: int) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "epoch": epoch}, tmp)


def load_weights(path: Path, model: torch.nn.Module) -> int:
    """Load ``best.pt`` weights into ``model``; return the epoch they come from."""
    if not path.is_file():
        raise MrsError(f"{path}: no checkpoint (was the run trained to at least one evaluation?)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    return int(payload["epoch"])
