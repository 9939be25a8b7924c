"""``run_sweep``: a W&B sweep spec run online (``wandb.agent``) or locally (grid/random/bayes).

Sweep directory::

    sweep.yaml     the spec as run; base.yaml: what every trial starts from (base_config + --set)
    state.json     spec, seed, overrides and one record per trial (written atomically after each)
    trials/t000/   a run directory per trial (config.yaml, metrics.json, best.pt, wandb/)
    summary.md / summary.csv / summary.png   every trial; the selected one with its test metrics

Selection uses the spec's validation metric only: trials run with ``evaluate_test=False`` and the
selected trial's test metrics are computed once, at the end. A killed sweep resumes: trials whose
``metrics.json`` exists are done; an interrupted trial continues from its own checkpoint.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from mrs.config import save_config, valid_keys
from mrs.errors import MrsError
from mrs.io import write_json_atomic
from mrs.sweep.propose import check_bayes, make_proposer
from mrs.sweep.spec import SweepSpec, load_spec
from mrs.sweep.state import SweepState
from mrs.sweep.trial import (TrialLogger, base_dict, is_finite, metric_value, read_metrics,
                             trial_config)

log = logging.getLogger(__name__)
RUN_SCALARS = ("best_valid", "best_epoch", "epochs_run", "train_time_s")  # top-level numbers of metrics.json


class Sweep:
    """A validated sweep, ready to run. ``train_fn``/``eval_fn``/``config_cls`` default to
    ``mrs.train.run_train``/``evaluate_checkpoint``/``TrainConfig``."""

    def __init__(self, spec_path: str | Path, out: str | Path, count: int | None = None,
                 use_wandb: bool = True, overrides: list[str] = (), seed: int = 0,
                 project: str | None = None, entity: str | None = None,
                 train_fn: Callable | None = None, eval_fn: Callable | None = None,
                 config_cls: type | None = None):
        if config_cls is None or train_fn is None or eval_fn is None:
            from mrs.train.trainer import evaluate_checkpoint, run_train
            from mrs.train.config import TrainConfig
            config_cls = config_cls or TrainConfig
            train_fn, eval_fn = train_fn or run_train, eval_fn or evaluate_checkpoint
        self.config_cls, self.train_fn, self.eval_fn = config_cls, train_fn, eval_fn
        self.spec: SweepSpec = load_spec(spec_path, valid_keys(config_cls))
        if self.spec.method == "bayes":
            check_bayes(self.spec)
        self._apply_overrides(list(overrides))
        self.out, self.use_wandb, self.seed = Path(out), use_wandb, seed
        self.base = base_dict(self.spec, list(overrides))
        self._query_counts: dict[tuple[str, str], dict[str, int]] = {}  # (data dir, eval cfg) -> per slice
        cfg = self._validate_values()
        # W&B project: --project, else the base config's wandb.project (default "mrs")
        self.project = project or getattr(getattr(cfg, "wandb", None), "project", None) or "mrs"
        self.entity = entity
        self.wandb_mode: str | None = None    # run() sets offline/disabled for a local sweep
        self.count = self._resolve_count(count)
        self.state = SweepState.open(self.out, self.spec, list(overrides), seed, self.base)

    # ------------------------------------------------------------------ validation
    def _apply_overrides(self, overrides: list[str]) -> None:
        """``--set`` wins over the spec's fixed ``value`` parameters (e.g. fewer epochs for a
        quick look) but may not touch a swept one: that would silently collapse the sweep."""
        from mrs.config import parse_override

        keys = {".".join(parse_override(o)[0]) for o in overrides}
        for p in self.spec.swept:
            if p.key in keys:
                raise MrsError(f"--set {p.key}=...: {p.key!r} is swept by {self.spec.path}; "
                               f"remove it from --set or from the spec's parameters")
        self.spec.params = [p for p in self.spec.params if p.swept or p.key not in keys]

    def _validate_values(self):
        """Every listed value (and each range's ends) must make a valid config: fail now, not at
        trial 7."""
        spec, checks = self.spec, [dict(self.spec.fixed)]
        for p in spec.swept:
            ends = p.values if p.distribution == "categorical" else (
                [p.min, p.max] if p.min is not None else [p.mu])
            for v in ends:
                if p.distribution == "int_uniform":
                    v = int(v)
                checks.append({**spec.fixed, p.key: v})
        for params in checks:
            cfg = trial_config(self.config_cls, self.base, params, spec, "check", False)
            data_dir = getattr(getattr(cfg, "data", None), "dir", None)
            if data_dir == "":
                raise MrsError(f"{spec.path}: config key 'data.dir' is empty: set it in "
                               f"base_config, a 'data.dir: {{value: ...}}' parameter or "
                               f"--set data.dir=DIR")
            if data_dir and not Path(data_dir).is_dir():
                raise MrsError(f"{spec.path}: config key 'data.dir': {data_dir} is not a "
                               f"directory")
            if data_dir:  # the selected trial is tested at the end: its split must exist now
                from mrs.train.guards import check_splits
                check_splits(data_dir, evaluate_test=True)
            self._check_metric(cfg)
        return cfg

    def _check_metric(self, cfg: Any) -> None:
        """``valid/[slice/]name@k`` must be something the evaluation computes (eval.ks,
        eval.metrics, eval.slices), or every trial would fail at its first validation."""
        ev = getattr(cfg, "eval", None)
        if ev is None:
            return
        parts = self.spec.metric.split("/")
        where = f"{self.spec.path}: key 'metric.name' ({self.spec.metric!r})"
        if self.spec.metric in RUN_SCALARS:
            return
        if parts[0] != "valid" or len(parts) not in (2, 3) or "@" not in parts[-1]:
            raise MrsError(f"{where}: not a metric the trials report; use valid/<metric>@<k> or "
                           f"valid/<slice>/<metric>@<k>, e.g. valid/recall@20 or valid/tail/ndcg@10 "
                           f"(or one of {', '.join(RUN_SCALARS)})")
        name, _, k = parts[-1].partition("@")
        if not k.isdigit() or int(k) not in ev.ks:
            raise MrsError(f"{where}: k={k} is not in eval.ks={ev.ks}")
        if name not in ev.metrics:
            raise MrsError(f"{where}: {name!r} is not in eval.metrics={ev.metrics}")
        if len(parts) == 3 and parts[1] not in ev.slices:
            raise MrsError(f"{where}: slice {parts[1]!r} is not in eval.slices={ev.slices}")
        data_dir = getattr(getattr(cfg, "data", None), "dir", None)
        if len(parts) == 3 and data_dir:  # a slice can be empty on this data (no cold items, ...)
            n = self._slice_queries(data_dir, ev)
            if not n.get(parts[1]):
                have = ", ".join(f"{s} ({q})" for s, q in n.items() if q)
                raise MrsError(f"{where}: slice {parts[1]!r} has no valid queries in {data_dir}, so "
                               f"no trial would report it; slices with queries: {have}")

    def _slice_queries(self, data_dir: str, ev: Any) -> dict[str, int]:
        """Valid queries per slice of ``data_dir`` under eval config ``ev`` (as the trials will
        count them), once per distinct pair."""
        from mrs.data.prepared import load_prepared
        from mrs.eval import Evaluator

        key = (str(data_dir), repr(ev))
        if key not in self._query_counts:
            self._query_counts[key] = Evaluator(load_prepared(data_dir), "valid", ev).query_counts()
        return self._query_counts[key]

    def _resolve_count(self, count: int | None) -> int:
        size = make_proposer(self.spec, self.seed).size() if self.spec.method == "grid" else None
        if count is None:
            count = size or self.spec.raw.get("run_cap")
        if count is None:
            raise MrsError(f"{self.spec.path}: method {self.spec.method!r} needs --count N "
                           f"(or 'run_cap' in the spec)")
        if not isinstance(count, int) or count < 1:
            raise MrsError(f"--count must be a positive integer, got {count!r}")
        if size is not None and count > size:
            log.info("grid has %d points; running %d trials, not %d", size, size, count)
            count = size
        return count

    # ------------------------------------------------------------------ running
    def run(self, online: bool | None = None) -> dict[str, Any]:
        """Run the missing trials, select on validation, test the selected trial once, summarise."""
        from mrs.tracking.wandb_logger import resolve_mode

        mode = resolve_mode()
        if online is None:
            online = self.use_wandb and mode == "online"
        # A local sweep's W&B runs are offline even for a logged-in user (upload: wandb sync);
        # WANDB_MODE=disabled still turns W&B off.
        self.wandb_mode = None if online else ("disabled" if mode == "disabled" else "offline")
        # the configs beside the results: the spec as run, and the base every trial starts from
        save_config(self.spec.raw, self.out / "sweep.yaml")
        save_config(self.base, self.out / "base.yaml")
        from mrs.tracking import provenance
        self.state.data.setdefault("provenance", []).append(provenance())  # one per invocation
        self.state.save()
        if online:
            from mrs.sweep.online import run_agent
            run_agent(self)
        else:
            self._run_local()
        return self.finish()

    def _run_local(self) -> None:
        from tqdm.auto import tqdm

        st = self.state
        history = [(t["params"], t.get("value")) for t in st.trials.values()
                   if t["status"] == "finished"]
        proposer = make_proposer(self.spec, self.seed, history)
        todo = [k for k in range(self.count) if not st.done(st.trial_id(k))]
        if len(todo) < self.count:
            log.info("resuming sweep %s: %d of %d trials already done", self.spec.name,
                     self.count - len(todo), self.count)
        for k in tqdm(todo, desc=f"sweep {self.spec.name}", unit="trial", dynamic_ncols=True):
            tid = st.trial_id(k)
            rec = st.trials.get(tid)
            if rec is not None and self._recover(rec):
                proposer.tell(k, rec["params"], rec.get("value"))
                continue
            params = rec["params"] if rec else proposer.propose(k)
            value = self.run_trial(tid, params)
            proposer.tell(k, params, value)

    def _recover(self, rec: dict) -> bool:
        """A trial killed after writing metrics.json (but before the state file) is done."""
        metrics = read_metrics(self.trial_dir(rec["id"]))
        if metrics is None:
            return False
        st = self.state
        st.finish_trial(rec["id"], metric_value(metrics, self.spec.metric))
        return True

    def trial_dir(self, tid: str) -> Path:
        return self.out / "trials" / tid

    def run_trial(self, tid: str, params: dict[str, Any], logger: Any = None) -> float | None:
        """Train one trial (resuming its checkpoint if it was interrupted); record it."""
        from mrs.tracking import make_logger

        run_dir = self.trial_dir(tid)
        st = self.state
        st.start_trial(tid, params)
        cfg = trial_config(self.config_cls, self.base, params, self.spec, tid, self.use_wandb)
        logger = logger or TrialLogger(make_logger(self.use_wandb, project=self.project,
                                                   entity=self.entity, job_type="sweep-trial",
                                                   mode=self.wandb_mode), params=params)
        resume = (run_dir / "config.yaml").is_file()
        t0 = time.time()
        value = None
        try:
            metrics = self.train_fn(cfg, run_dir, logger=logger, resume=resume,
                                    evaluate_test=False)
            value = metric_value(metrics, self.spec.metric, str(run_dir / "metrics.json"))
        except Exception as e:  # a failing trial is recorded; the sweep goes on (as W&B's agent)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("trial %s %s failed: %s", tid, params, msg)
            logger.close({"sweep/status": "failed"})
            st.fail_trial(tid, f"{type(e).__name__}: {msg}", time.time() - t0)
            return None
        logger.close({self.spec.metric: value, "sweep/trial": tid})
        st.finish_trial(tid, value, time.time() - t0)
        return value

    # ------------------------------------------------------------------ the end
    def finish(self) -> dict[str, Any]:
        """Select the best finished trial on validation, test it once, write the summary."""
        from mrs.sweep.summary import write_summary

        st, spec = self.state, self.spec
        finished = [t for t in st.trials.values() if t["status"] == "finished"
                    and is_finite(t.get("value"))]
        best = None
        for t in finished:
            if best is None or spec.better(t["value"], best["value"]):
                best = t
        if best is not None and (st.selected or {}).get("id") != best["id"]:
            st.select(best["id"], None)
        if best is not None and st.selected.get("test") is None:
            log.info("selected %s (%s=%.4f); evaluating it on test", best["id"], spec.metric,
                     best["value"])
            metrics = self.eval_fn(self.trial_dir(best["id"]), split="test")
            st.select(best["id"], metrics.get("test", metrics))
        if best is None:
            log.warning("sweep %s: no trial finished; nothing to select", spec.name)
        write_summary(self)
        write_json_atomic(self.out / "selected.json", st.selected or {})
        if self.use_wandb:
            self._log_summary_run()
        return {"selected": st.selected, "trials": list(st.trials.values()),
                "dir": str(self.out)}

    def _log_summary_run(self) -> None:
        """One W&B run (job type ``sweep-summary``, in the sweep's group) holding the trials
        table, the plot and the selected trial's test metrics; once per new outcome."""
        from mrs.sweep.summary import test_metrics, trial_rows
        from mrs.tracking import make_logger

        st, spec = self.state, self.spec
        outcome = [st.selected and st.selected.get("id"),
                   sorted([t["id"], t["status"]] for t in st.trials.values())]  # JSON-equal
        if st.data.get("summary_run") == outcome:
            return
        logger = make_logger(True, project=self.project, entity=self.entity,
                             job_type="sweep-summary", mode=self.wandb_mode)
        logger.start({"sweep": st.data["spec"], "overrides": st.data["overrides"],
                      "seed": self.seed, "sweep_id": st.sweep_id},
                     self.out, name=f"{spec.name}-summary", group=spec.name, tags=["sweep"])
        header, rows = trial_rows(self)
        logger.log_table("trials", header, [[_cell(v) for v in r] for r in rows])
        if (self.out / "summary.png").is_file():
            logger.log_image("sweep", self.out / "summary.png")
        if st.selected:
            logger.log_summary({"selected": st.selected["id"], spec.metric: st.selected["value"],
                                **{f"test/{k}": v for k, v in test_metrics(self).items()}})
        logger.finish()
        st.data["summary_run"] = outcome
        st.save()


def _cell(v: Any) -> Any:
    """W&B tables want one type per column: parameters may be lists or mixed, so stringify."""
    return v if isinstance(v, (int, float, str)) or v is None else str(v)


def run_sweep(spec_path: str | Path, out: str | Path, count: int | None = None,
              use_wandb: bool = True, overrides: list[str] = (), seed: int = 0,
              online: bool | None = None, **kw: Any) -> dict[str, Any]:
    """Validate ``spec_path`` and run it into ``out`` (see the module docstring)."""
    return Sweep(spec_path, out, count=count, use_wandb=use_wandb, overrides=overrides,
                 seed=seed, **kw).run(online=online)
