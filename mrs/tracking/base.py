"""What training reports to an experiment tracker. The run directory is always the primary copy.

``mrs train`` / ``mrs compare`` call these hooks; ``NullLogger`` does nothing (``--no-wandb``),
``mrs.tracking.wandb_logger.WandbLogger`` sends the same to Weights & Biases (offline by default).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class RunLogger(Protocol):
    def start(self, config: dict[str, Any], run_dir: Path, name: str | None = None,
              group: str | None = None, tags: list[str] | None = None) -> None:
        """Open a run with the full resolved config (plus git commit and package versions)."""

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        """Per-epoch scalars: ``loss``, ``valid/recall@20``, ``alpha/text`` (fusion weights), ..."""

    def log_summary(self, metrics: dict[str, Any]) -> None:
        """Final ``metrics.json`` content (slices all/tail/head/cold with intervals)."""

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table, e.g. the slice metrics or the compare table."""

    def log_image(self, name: str, path: Path) -> None:
        """A plot written to the run directory (PNG)."""

    def finish(self) -> None:
        """Close the run (idempotent)."""


class NullLogger:
    """The logger for ``--no-wandb``: records nothing outside the run directory."""

    def start(self, config, run_dir, name=None, group=None, tags=None) -> None:
        pass

    def log_epoch(self, epoch, values) -> None:
        pass

    def log_summary(self, metrics) -> None:
        pass

    def log_table(self, name, columns, rows) -> None:
        pass

    def log_image(self, name, path) -> None:
        pass

    def finish(self) -> None:
        pass
