"""Sweep specs in W&B's own YAML format, validated before any trial starts.

A spec is what ``wandb sweep`` reads (``method``, ``metric``, ``parameters``, optional ``name``,
``description``, ``run_cap``; ``program``/``command``/``early_terminate`` are accepted and ignored,
since trials run in-process), plus one mrs key that is stripped before the spec goes to W&B:

    base_config: ../experiments/graph.yaml   # a train config; relative to this spec file

Every trial's config is: ``TrainConfig`` defaults <- ``base_config`` <- ``mrs sweep --set`` <-
the trial's parameters. Parameter names are the trainer's dotted keys (``model.encoder``,
``train.lr``); fixed settings are ``{value: x}`` parameters, which ``--set`` may override
(a swept one it may not).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrs.config import read_yaml
from mrs.errors import MrsError

METHODS = ("grid", "random", "bayes")
# W&B distributions the local runner implements (https://docs.wandb.ai/guides/sweeps/sweep-config-keys).
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform_values", "normal", "q_normal")
WANDB_KEYS = {"method", "metric", "parameters", "name", "description", "program", "command",
              "early_terminate", "run_cap", "project", "entity"}
MRS_KEYS = {"base_config"}


@dataclass
class Param:
    """One swept (or fixed) parameter, W&B semantics."""

    key: str                          # dotted TrainConfig key
    distribution: str                 # one of DISTRIBUTIONS
    values: list[Any] = field(default_factory=list)  # categorical choices / [constant]
    min: float | None = None
    max: float | None = None
    q: float | None = None            # quantisation step (q_* distributions)
    mu: float = 0.0                   # normal
    sigma: float = 1.0

    @property
    def swept(self) -> bool:
        return not (self.distribution == "constant" or len(self.values) == 1 and
                    self.distribution == "categorical")

    def sample(self, rng: np.random.Generator) -> Any:
        d = self.distribution
        if d in ("constant", "categorical"):
            return self.values[int(rng.integers(len(self.values)))]
        if d == "int_uniform":
            return int(rng.integers(int(self.min), int(self.max) + 1))
        if d == "uniform":
            return float(rng.uniform(self.min, self.max))
        if d == "q_uniform":
            return float(round(rng.uniform(self.min, self.max) / self.q) * self.q)
        if d == "log_uniform":          # W&B: min/max are natural-log exponents
            return float(math.exp(rng.uniform(self.min, self.max)))
        if d == "log_uniform_values":
            return float(math.exp(rng.uniform(math.log(self.min), math.log(self.max))))
        if d == "q_log_uniform_values":
            v = math.exp(rng.uniform(math.log(self.min), math.log(self.max)))
            return float(round(v / self.q) * self.q)
        if d == "normal":
            return float(rng.normal(self.mu, self.sigma))
        if d == "q_normal":
            return float(round(rng.normal(self.mu, self.sigma) / self.q) * self.q)
        raise AssertionError(d)


@dataclass
class SweepSpec:
    path: Path
    name: str
    method: str
    metric: str                       # e.g. "valid/recall@20"
    goal: str                         # "maximize" | "minimize"
    params: list[Param]
    base_config: Path | None
    raw: dict[str, Any]               # the YAML as read

    @property
    def swept(self) -> list[Param]:
        return [p for p in self.params if p.swept]

    @property
    def fixed(self) -> dict[str, Any]:
        return {p.key: p.values[0] for p in self.params if not p.swept}

    def grid(self) -> list[dict[str, Any]]:
        """Every combination, in spec order (the first parameter varies slowest, as in W&B)."""
        keys = [p.key for p in self.swept]
        combos = itertools.product(*[p.values for p in self.swept])
        return [{**self.fixed, **dict(zip(keys, c))} for c in combos]

    def sample(self, seed: int, index: int) -> dict[str, Any]:
        """Trial ``index`` of a random search: its own RNG stream, so a resumed sweep redraws it."""
        rng = np.random.default_rng([seed, index])
        return {**self.fixed, **{p.key: p.sample(rng) for p in self.swept}}

    def better(self, a: float, b: float) -> bool:
        return a > b if self.goal == "maximize" else a < b

    def wandb_config(self) -> dict[str, Any]:
        """The spec as W&B's server expects it: mrs-only keys removed, ``name`` filled in."""
        out = {k: v for k, v in self.raw.items() if k in WANDB_KEYS}
        out["name"] = self.name
        return out


def load_spec(path: str | Path, valid: list[str]) -> SweepSpec:
    """Read and validate a sweep YAML; ``valid`` are the allowed parameter names (dotted keys)."""
    path = Path(path)
    raw = read_yaml(path)
    where = str(path)
    unknown = sorted(set(raw) - WANDB_KEYS - MRS_KEYS)
    if unknown:
        raise MrsError(f"{where}: unknown sweep key {unknown[0]!r} "
                       f"(known: {', '.join(sorted(WANDB_KEYS | MRS_KEYS))})")
    method = raw.get("method")
    if method not in METHODS:
        raise MrsError(f"{where}: key 'method': {method!r} is not one of {list(METHODS)}")
    metric = raw.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise MrsError(f"{where}: key 'metric' must be a mapping with a 'name' "
                       f"(e.g. {{name: valid/recall@20, goal: maximize}})")
    goal = metric.get("goal", "minimize")     # W&B's default goal
    if goal not in ("maximize", "minimize"):
        raise MrsError(f"{where}: key 'metric.goal': {goal!r} is not maximize or minimize")
    if "/" not in metric["name"] and metric["name"].split(".")[0] in ("valid", "test"):
        # valid.all.recall@20 is how many people spell valid/all/recall@20: accept it, and
        # register the canonical name with W&B too, since that is the key the trials log
        metric = {**metric, "name": metric["name"].replace(".", "/")}
        raw = {**raw, "metric": metric}
    if metric["name"].split("/")[0] in ("test",):
        raise MrsError(f"{where}: key 'metric.name': {metric['name']!r} selects on the test set; "
                       f"use a validation metric such as valid/recall@20")
    params_raw = raw.get("parameters")
    if not isinstance(params_raw, dict) or not params_raw:
        raise MrsError(f"{where}: key 'parameters' must be a non-empty mapping")
    allowed = set(valid)
    params = []
    for key, body in params_raw.items():
        # plug-in options (model.options.<plug-in>.<key>) are checked against the plug-in's
        # Options dataclass when each trial's config is built
        if key not in allowed and not str(key).startswith("model.options."):
            near = [k for k in valid if k.split(".")[-1] == str(key).split(".")[-1]]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise MrsError(f"{where}: unknown parameter 'parameters.{key}'{hint}: not a train "
                           f"config key")
        params.append(_param(f"{where}: parameter 'parameters.{key}'", key, body))
    if method == "grid":
        for p in params:
            if p.distribution not in ("constant", "categorical"):
                raise MrsError(f"{where}: parameter 'parameters.{p.key}': grid search needs "
                               f"'values' or 'value', not distribution {p.distribution!r}")
    if not any(p.swept for p in params):
        raise MrsError(f"{where}: key 'parameters': nothing is swept (every parameter is fixed)")
    base = raw.get("base_config")
    base_path = None
    if base is not None:
        base_path = (path.parent / str(base)).resolve()
        if not base_path.is_file():
            raise MrsError(f"{where}: key 'base_config': {base_path} not found")
    name = str(raw.get("name") or path.stem)
    return SweepSpec(path=path, name=name, method=method, metric=metric["name"], goal=goal,
                     params=params, base_config=base_path, raw=raw)


def _param(where: str, key: str, body: Any) -> Param:
    if not isinstance(body, dict):
        raise MrsError(f"{where} must be a mapping such as {{values: [...]}} or {{value: x}}")
    extra = sorted(set(body) - {"value", "values", "distribution", "min", "max", "q", "mu",
                                "sigma", "probabilities"})
    if extra:
        raise MrsError(f"{where}: unknown field {extra[0]!r}")
    dist = body.get("distribution")
    if "value" in body:
        return Param(key, "constant", [body["value"]])
    if "values" in body:
        values = body["values"]
        if not isinstance(values, list) or not values:
            raise MrsError(f"{where}: 'values' must be a non-empty list")
        if dist not in (None, "categorical"):
            raise MrsError(f"{where}: 'values' goes with distribution categorical, not {dist!r}")
        return Param(key, "categorical", list(values))
    if dist is None:   # W&B infers int_uniform for integer bounds, else uniform
        if "min" not in body or "max" not in body:
            raise MrsError(f"{where}: needs 'value', 'values' or 'min'/'max'")
        ints = all(isinstance(body[k], int) and not isinstance(body[k], bool) for k in ("min", "max"))
        dist = "int_uniform" if ints else "uniform"
    if dist not in DISTRIBUTIONS:
        raise MrsError(f"{where}: distribution {dist!r} is not one of {list(DISTRIBUTIONS)}")
    p = Param(key, dist, q=body.get("q", 1.0 if dist.startswith("q_") else None), mu=float(body.get("mu", 0.0)),
              sigma=float(body.get("sigma", 1.0)))
    if dist in ("normal", "q_normal"):
        if p.sigma <= 0:
            raise MrsError(f"{where}: 'sigma' must be positive")
    else:
        for k in ("min", "max"):
            if not isinstance(body.get(k), (int, float)) or isinstance(body.get(k), bool):
                raise MrsError(f"{where}: '{k}' must be a number, got {body.get(k)!r}")
        p.min, p.max = float(body["min"]), float(body["max"])
        if not p.min < p.max:
            raise MrsError(f"{where}: 'min' ({p.min}) must be below 'max' ({p.max})")
        if dist in ("log_uniform_values", "q_log_uniform_values") and p.min <= 0:
            raise MrsError(f"{where}: 'min' must be positive for {dist}")
    if dist.startswith("q_"):
        if not isinstance(p.q, (int, float)) or p.q <= 0:
            raise MrsError(f"{where}: 'q' must be a positive number for {dist}")
    return p
