"""Experiment tracking: ``make_logger(enabled)`` gives the trainer a ``RunLogger``.

``NullLogger`` for ``--no-wandb`` (no W&B files at all), otherwise a ``WandbLogger`` that is
offline unless the user is logged in or sets ``$WANDB_MODE``.
"""
from __future__ import annotations

from typing import Any

from mrs.tracking.base import NullLogger, RunLogger
from mrs.tracking.provenance import provenance


def make_logger(enabled: bool, project: str = "mrs", **kw: Any) -> RunLogger:
    """``NullLogger()`` when ``enabled`` is false, else ``WandbLogger(project, **kw)``.

    ``kw``: ``entity``, ``mode`` (``online``/``offline``/``disabled``; default resolved from the
    environment), ``job_type``, ``tags``, ``notes``. Importing wandb is deferred to ``start``.
    """
    if not enabled:
        return NullLogger()
    from mrs.tracking.wandb_logger import WandbLogger
    return WandbLogger(project=project, **kw)


__all__ = ["NullLogger", "RunLogger", "make_logger", "provenance"]
