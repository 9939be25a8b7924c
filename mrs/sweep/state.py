"""``state.json``: the sweep's memory across kills, rewritten atomically after every change.

A trial record is ``{"id", "index", "params", "status": running|finished|failed, "value",
"error", "time_s"}``. ``running`` after a restart means the trial was interrupted: it is run
again (continuing from its checkpoint). ``failed`` is final, as in a W&B sweep.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mrs.errors import MrsError
from mrs.io import write_json_atomic
from mrs.sweep.spec import SweepSpec

STATE = "state.json"


class SweepState:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    @classmethod
    def open(cls, out: Path, spec: SweepSpec, overrides: list[str], seed: int,
             base: dict[str, Any] | None = None) -> "SweepState":
        """Load ``out/state.json`` (it must describe this same sweep) or start a new one."""
        path = Path(out) / STATE
        key = fingerprint(spec, overrides, seed, base)
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise MrsError(f"{path}: unreadable sweep state ({e})") from None
            if data.get("fingerprint") != key:
                raise MrsError(f"{path}: this directory holds a different sweep (spec, its base_config, "
                               f"--set or --seed changed); use another --out")
            return cls(path, data)
        data = {"name": spec.name, "spec_file": str(spec.path), "spec": spec.raw,
                "method": spec.method, "metric": spec.metric, "goal": spec.goal,
                "overrides": overrides, "seed": seed, "fingerprint": key,
                "sweep_id": None, "trials": {}, "selected": None}
        return cls(path, data)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    # ------------------------------------------------------------------ trials
    @property
    def trials(self) -> dict[str, dict[str, Any]]:
        return self.data["trials"]

    @property
    def selected(self) -> dict[str, Any] | None:
        return self.data["selected"]

    @staticmethod
    def trial_id(k: int) -> str:
        return f"t{k:03d}"

    def done(self, tid: str) -> bool:
        t = self.trials.get(tid)
        return t is not None and t["status"] in ("finished", "failed")

    def next_index(self) -> int:
        return len(self.trials)

    def start_trial(self, tid: str, params: dict[str, Any]) -> None:
        rec = self.trials.setdefault(tid, {"id": tid, "index": int(tid[1:]), "params": params})
        rec.update(status="running", value=None, error=None)
        self.save()

    def finish_trial(self, tid: str, value: float, time_s: float | None = None) -> None:
        self.trials[tid].update(status="finished", value=value, error=None)
        if time_s is not None:
            self.trials[tid]["time_s"] = round(time_s, 3)
        self.save()

    def fail_trial(self, tid: str, error: str, time_s: float) -> None:
        self.trials[tid].update(status="failed", value=None, error=error, time_s=round(time_s, 3))
        self.save()

    def select(self, tid: str, test: dict[str, Any] | None) -> None:
        self.data["selected"] = {"id": tid, "value": self.trials[tid]["value"],
                                 "params": self.trials[tid]["params"], "test": test}
        self.save()

    @property
    def sweep_id(self) -> str | None:
        return self.data.get("sweep_id")

    @sweep_id.setter
    def sweep_id(self, value: str) -> None:
        self.data["sweep_id"] = value
        self.save()


def fingerprint(spec: SweepSpec, overrides: list[str], seed: int,
                base: dict[str, Any] | None = None) -> str:
    """What must not change between a sweep and its resume (``--count`` may grow)."""
    blob = json.dumps({"spec": spec.raw, "overrides": list(overrides), "seed": seed,
                       "base": base or {}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
