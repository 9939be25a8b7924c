"""Phase 4: training (``mrs train``), comparisons (``mrs compare``) and their run directories.

Public API (imported lazily, so ``mrs --help`` does not load torch)::

    from mrs.train import TrainConfig, load_train_config, run_train, evaluate_checkpoint, run_compare
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "mrs.train.config", "load_train_config": "mrs.train.config",
    "run_train": "mrs.train.trainer", "evaluate_checkpoint": "mrs.train.trainer",
    "Trainer": "mrs.train.trainer", "run_compare": "mrs.train.compare",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mrs.train' has no attribute {name!r}")
