"""Checks around a training run that keep failures cheap and honest.

- ``check_splits``: a dataset without valid rows (or test rows, when the test is read) fails
  before any epoch, not after the whole training.
- ``run_dir``: a run that fails before its first checkpoint removes the run directory it created,
  so rerunning the same command is not refused as "already holds a run".
- ``check_divergence``: a finite but exploding loss stops the run with a clear message instead of
  finishing with rc 0 and garbage metrics.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Iterator

from mrs.errors import MrsError

DIVERGED = 1000.0  # BPR starts at ln 2 and falls; 1000x that is a blown-up model, never progress


def check_splits(data_dir: str | Path, evaluate_test: bool = True) -> None:
    """Refuse a dataset whose ``dataset.json`` counts no valid (or, if read, no test) rows."""
    meta_path = Path(data_dir) / "dataset.json"
    try:
        splits = json.loads(meta_path.read_text()).get("splits") or {}
    except (OSError, ValueError, AttributeError):
        return  # missing or unreadable: the dataset loader gives the precise error
    needed = ["train", "valid"] + (["test"] if evaluate_test else [])
    for name in needed:
        if name in splits and int(splits[name]) == 0:
            hint = " (or pass --no-test)" if name == "test" else ""
            raise MrsError(f"{meta_path}: no {name} interactions (splits {splits}); nothing to "
                           f"{'train on' if name == 'train' else 'evaluate'}: re-prepare with "
                           f"other split settings{hint}")


@contextlib.contextmanager
def run_dir(out: Path, checkpoint: str) -> Iterator[None]:
    """Create ``out``; if the block fails before ``out/checkpoint`` exists, remove ``out`` again
    (only when this call created it: an existing directory is never deleted)."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if created and not (out / checkpoint).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise


def check_divergence(losses: dict[str, float], epoch: int, lr: float, kept: str) -> None:
    """Stop when the epoch's mean BPR loss is orders of magnitude above its ln 2 start."""
    bpr = losses.get("bpr", losses.get("loss", 0.0))
    if math.isfinite(bpr) and bpr > DIVERGED * math.log(2):
        raise MrsError(f"training diverged: mean BPR loss {bpr:.3g} at epoch {epoch + 1} is over "
                       f"{DIVERGED:g}x its starting value ln 2 = 0.693; lower train.lr (now {lr:g}); {kept}")


def kept_message(epoch: int) -> str:
    """What a run stopped during epoch ``epoch + 1`` leaves behind (no "epoch 0" checkpoint)."""
    if epoch > 0:
        return f"the last good checkpoint (epoch {epoch}) is kept"
    return "no epoch finished, so nothing was checkpointed"
