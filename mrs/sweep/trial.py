"""One sweep trial: its config, its W&B run, its validation metric.

Trial config = ``TrainConfig`` defaults <- the spec's ``base_config`` <- ``--set`` overrides <-
the trial's parameters. ``run_train`` opens and closes the trial's W&B run itself; ``TrialLogger``
keeps it open a moment longer to put the sweep's metric (the best validation value, not the last
epoch's) into the run summary, which is what W&B's sweep controller reads.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from mrs.config import from_dict, merge_overrides, read_yaml
from mrs.errors import MrsError
from mrs.sweep.spec import SweepSpec


def base_dict(spec: SweepSpec, overrides: list[str]) -> dict[str, Any]:
    data = read_yaml(spec.base_config) if spec.base_config else {}
    return merge_overrides(data, overrides)


def trial_config(config_cls: type, base: dict[str, Any], params: dict[str, Any],
                 spec: SweepSpec, trial_id: str, use_wandb: bool):
    """The validated config of one trial (``MrsError`` naming the key on a bad value)."""
    data = copy.deepcopy(base)
    for key, value in params.items():
        node = data
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = copy.deepcopy(value)
    select = selection_metric(spec.metric)
    if select and "train.select_metric" not in params:
        # The trainer's best epoch is picked on the same metric the sweep ranks trials by.
        data.setdefault("train", {})["select_metric"] = select
    wb = data.setdefault("wandb", {})
    wb.update(enabled=use_wandb, name=f"{spec.name}-{trial_id}", group=spec.name)
    wb["tags"] = sorted(set(wb.get("tags") or []) | {"sweep"})
    try:
        return from_dict(config_cls, data)
    except MrsError as e:
        raise MrsError(f"{spec.path}: trial {trial_id} {params}: {e}") from None


def selection_metric(name: str) -> str | None:
    """``valid/recall@20`` or ``valid/all/recall@20`` -> ``recall@20`` (train.select_metric)."""
    parts = name.split("/")
    if parts[0] != "valid":
        return None
    if len(parts) == 2:
        return parts[1]
    if len(parts) == 3 and parts[1] == "all":
        return parts[2]
    return None


def metric_value(metrics: dict[str, Any], name: str, where: str = "metrics.json") -> float:
    """Look ``valid/recall@20`` up in a run's metrics: ``valid.recall@20``, else slice ``all``."""
    parts = name.split("/")
    candidates = [parts, parts[:1] + ["all"] + parts[1:]]
    for path in candidates:
        node: Any = metrics
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return float(node)
        if node is None and path is candidates[0]:
            continue
    have = sorted(f"{s}/{m}" for s, d in (metrics.get(parts[0]) or {}).items()
                  if isinstance(d, dict) for m in d)[:8]
    raise MrsError(f"{where}: sweep metric {name!r} not found (have e.g. {', '.join(have)})")


def is_finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


class TrialLogger:
    """Wraps a ``RunLogger`` for one trial: ``run_train``'s ``finish`` is deferred to ``close``."""

    def __init__(self, inner: Any, started: bool = False, params: dict[str, Any] | None = None):
        self.inner, self.started = inner, started
        # The swept values also as flat top-level keys ("train.lr"), as a W&B agent's trial
        # has them: W&B's parallel-coordinates and sweep views read those.
        self.params = dict(params or {})

    def start(self, config, run_dir, name=None, group=None, tags=None) -> None:
        config = {**config, **self.params}
        if self.started and hasattr(self.inner, "update_config"):
            self.inner.update_config(config)       # online: the agent's run is already open
        else:
            self.inner.start(config, run_dir, name=name, group=group, tags=tags)
            self.started = True

    def log_epoch(self, epoch, values) -> None:
        self.inner.log_epoch(epoch, values)

    def log_summary(self, metrics) -> None:
        self.inner.log_summary(metrics)

    def log_table(self, name, columns, rows) -> None:
        self.inner.log_table(name, columns, rows)

    def log_image(self, name, path) -> None:
        self.inner.log_image(name, path)

    def finish(self) -> None:
        pass  # see close()

    def close(self, summary: dict[str, Any] | None = None) -> None:
        if summary:
            self.inner.log_summary(summary)
        self.inner.finish()


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    import json

    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None   # unreadable: the trial is re-run
