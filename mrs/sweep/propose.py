"""Where the next offline trial's parameters come from: grid order, seeded random draws, or
optuna's TPE sampler for ``bayes``. Each is rebuilt from the sweep's state file on resume, so a
resumed sweep proposes what an uninterrupted one would have (grid, random) or continues from
every finished trial (bayes).
"""
from __future__ import annotations

import math
from typing import Any

from mrs.errors import MrsError
from mrs.sweep.spec import Param, SweepSpec


class Proposer:
    """``propose(k)`` gives trial ``k``'s parameters; ``tell(k, params, value)`` reports back."""

    def __init__(self, spec: SweepSpec, seed: int):
        self.spec, self.seed = spec, seed

    def size(self) -> int | None:
        """Number of distinct trials, when finite (grid)."""
        return None

    def propose(self, k: int) -> dict[str, Any]:
        raise NotImplementedError

    def tell(self, k: int, params: dict[str, Any], value: float | None) -> None:
        pass


class GridProposer(Proposer):
    def __init__(self, spec: SweepSpec, seed: int):
        super().__init__(spec, seed)
        self.points = spec.grid()

    def size(self) -> int:
        return len(self.points)

    def propose(self, k: int) -> dict[str, Any]:
        return dict(self.points[k])


class RandomProposer(Proposer):
    def propose(self, k: int) -> dict[str, Any]:
        return self.spec.sample(self.seed, k)


class BayesProposer(Proposer):
    """TPE (optuna) over the swept parameters; categoricals are indexed so any YAML value works."""

    def __init__(self, spec: SweepSpec, seed: int, history: list[tuple[dict, float | None]] = ()):
        super().__init__(spec, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.dists = {p.key: _distribution(p) for p in spec.swept}
        direction = "maximize" if spec.goal == "maximize" else "minimize"
        self.study = optuna.create_study(direction=direction,
                                         sampler=optuna.samplers.TPESampler(seed=seed))
        self.asked: dict[int, Any] = {}
        for params, value in history:   # finished trials from the state file
            self._add(params, value)

    def propose(self, k: int) -> dict[str, Any]:
        trial = self.study.ask(self.dists)
        self.asked[k] = trial
        return {**self.spec.fixed, **{p.key: _decode(p, trial.params[p.key])
                                      for p in self.spec.swept}}

    def tell(self, k: int, params: dict[str, Any], value: float | None) -> None:
        trial = self.asked.pop(k, None)
        if trial is None:               # a trial re-run after a resume: add it as finished
            self._add(params, value)
        elif value is None or not math.isfinite(value):
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def _add(self, params: dict[str, Any], value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return  # failed trials carry no information for TPE
        encoded = {p.key: _encode(p, params[p.key]) for p in self.spec.swept}
        self.study.add_trial(self.optuna.trial.create_trial(
            params=encoded, distributions=self.dists, value=value))


def make_proposer(spec: SweepSpec, seed: int,
                  history: list[tuple[dict, float | None]] = ()) -> Proposer:
    if spec.method == "grid":
        return GridProposer(spec, seed)
    if spec.method == "random":
        return RandomProposer(spec, seed)
    return BayesProposer(spec, seed, history)


def check_bayes(spec: SweepSpec) -> None:
    """Fail before any trial on distributions the optuna runner cannot express."""
    for p in spec.swept:
        if p.distribution in ("normal", "q_normal"):
            raise MrsError(f"{spec.path}: parameter 'parameters.{p.key}': distribution "
                           f"{p.distribution!r} is unbounded; the offline bayes runner needs "
                           f"min/max (use uniform or log_uniform_values)")


def _distribution(p: Param):
    import optuna.distributions as od

    d = p.distribution
    if d == "categorical":
        return od.CategoricalDistribution(list(range(len(p.values))))
    if d == "int_uniform":
        return od.IntDistribution(int(p.min), int(p.max))
    if d == "uniform":
        return od.FloatDistribution(p.min, p.max)
    if d == "q_uniform":
        return od.FloatDistribution(p.min, p.max)      # rounded to q in _decode
    if d == "log_uniform":
        return od.FloatDistribution(math.exp(p.min), math.exp(p.max), log=True)
    if d in ("log_uniform_values", "q_log_uniform_values"):
        return od.FloatDistribution(p.min, p.max, log=True)
    raise MrsError(f"parameter {p.key!r}: distribution {d!r} not supported by bayes")


def _decode(p: Param, x: Any) -> Any:
    if p.distribution == "categorical":
        return p.values[int(x)]
    if p.distribution in ("q_uniform", "q_log_uniform_values"):
        return float(round(x / p.q) * p.q)
    return x


def _encode(p: Param, v: Any) -> Any:
    if p.distribution == "categorical":
        return p.values.index(v)
    if p.distribution == "q_log_uniform_values":   # keep a rounded value inside the bounds
        return min(max(float(v), p.min), p.max)
    if p.distribution == "q_uniform":
        return min(max(float(v), p.min), p.max)
    return v
