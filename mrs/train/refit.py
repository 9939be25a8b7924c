"""The final test of a selected configuration, refit on train + valid (``train.final_fit``).

On a temporal split the valid window is the most recent data before the test window; a model
that never sees it is judged on a gap. Kaggle practice, and ``final_fit: auto`` here on
temporal splits: after selection on valid (best epoch ``E``), train the same configuration
afresh, with the same seed, on train + valid for exactly ``E`` epochs, and read the test split
once with that model. Valid metrics stay those of the selected model. ``metrics.json`` records
``final_fit``.
"""
from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from mrs.data.prepared import SPLITS, PreparedDataset

log = logging.getLogger(__name__)


def is_temporal(ds: PreparedDataset) -> bool:
    return str(ds.meta.get("params", {}).get("split", "")) == "temporal"


def wants_refit(setting: str, ds: PreparedDataset) -> bool:
    """``train+valid``: always; ``train``: never; ``auto``: on temporal splits."""
    return setting == "train+valid" or (setting == "auto" and is_temporal(ds))


def train_valid_view(ds: PreparedDataset) -> PreparedDataset:
    """The dataset with its valid rows relabelled train (test untouched; nothing written)."""
    inter: pd.DataFrame = ds.interactions.copy()
    inter.loc[inter["split"] == SPLITS["valid"], "split"] = SPLITS["train"]
    return dataclasses.replace(ds, interactions=inter)


def refit_trainer(tr, epochs: int):
    """A new :class:`~mrs.train.trainer.Trainer` of ``tr``'s config trained on train + valid for
    ``epochs`` epochs (the seed's generator, as the selected run started). Under torchrun it
    joins ``tr``'s process group and trains distributed, like the first fit: every rank its
    shard of each global batch, gradients all-reduced. ``ref.refit_info``: epochs, world size
    and the number of gradient all-reduces the refit made (0 in one process)."""
    from mrs.train.trainer import Trainer, seed_everything

    cfg = tr.cfg
    ref = Trainer.build(cfg, seed_everything(cfg.train.seed), device=tr.device, ds=train_valid_view(tr.ds))
    ref.dist = tr.dist
    ref.dist.broadcast_params(ref.model)
    steps = ref.dist.steps
    log.info("final fit on train + valid: %d epochs (%d process%s)", epochs, ref.dist.world_size,
             "es" if ref.dist.enabled else "")
    for epoch in range(epochs):
        ref.train_epoch(epoch)
    ref.refit_info = {"epochs": epochs, "world_size": ref.dist.world_size, "synced_steps": ref.dist.steps - steps}
    return ref
