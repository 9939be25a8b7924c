"""Offline sweeps end to end on a tiny planted dataset with the real trainer."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from mrs.errors import MrsError
from mrs.sweep import Sweep, run_sweep
from mrs.train.trainer import evaluate_checkpoint, run_train


def _wandb_dirs(root: Path) -> list[Path]:
    return sorted(root.rglob("offline-run-*"))


def _counting(fn, calls: list, fail_at: int | None = None):
    def wrapped(*a, **k):
        calls.append(a)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt  # a kill: not a failed trial, the sweep stops here
        return fn(*a, **k)
    return wrapped


def test_offline_grid_sweep(tmp_path, tiny_data, make_spec, read_record):
    spec = make_spec(tmp_path, tiny_data)
    out = tmp_path / "sweep"
    evals: list = []
    result = run_sweep(spec, out, use_wandb=True, online=False,
                       eval_fn=_counting(evaluate_checkpoint, evals))
    trials = result["trials"]
    assert len(trials) == 4 and all(t["status"] == "finished" for t in trials)
    assert {(t["params"]["model.encoder"], t["params"]["train.lr"]) for t in trials} == {
        ("mf", 0.05), ("mf", 0.001), ("lightgcn", 0.05), ("lightgcn", 0.001)}
    # one offline W&B run per trial, inside that trial's run directory, grouped by the sweep
    runs = _wandb_dirs(out / "trials")
    assert len(runs) == 4
    assert {r.parents[1].name for r in runs} == {"t000", "t001", "t002", "t003"}
    blob = read_record(runs[0])
    assert b"tiny" in blob and b"valid/recall@20" in blob
    assert b"model.encoder" in blob          # swept values as flat keys, as an agent's trial
    # each trial's value is its own metrics.json's validation recall@20; no test was read
    for t in trials:
        m = json.loads((out / "trials" / t["id"] / "metrics.json").read_text())
        assert t["value"] == pytest.approx(m["valid"]["all"]["recall@20"])
        if t["id"] != result["selected"]["id"]:
            assert "test" not in m
    # selection: the best validation value; test computed once, for it only
    best = max(trials, key=lambda t: t["value"])
    sel = result["selected"]
    assert sel["id"] == best["id"] and sel["value"] == best["value"]
    assert len(evals) == 1 and Path(evals[0][0]).name == best["id"]
    assert set(sel["test"]) >= {"all"} and "recall@20" in sel["test"]["all"]
    # summary: CSV with every trial, the selected one marked; markdown with the test metrics
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == ["t000", "t001", "t002", "t003"]
    assert [r["trial"] for r in rows if r["selected"] == "*"] == [best["id"]]
    md = (out / "summary.md").read_text()
    assert f"Selected: {best['id']}" in md and "Test metrics" in md
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert yaml.safe_load((out / "sweep.yaml").read_text())["method"] == "grid"
    (prov,) = json.loads((out / "state.json").read_text())["provenance"]
    assert prov["versions"]["torch"] and "commit" in prov["git"]
    assert yaml.safe_load((out / "base.yaml").read_text())["data"]["dir"] == str(tiny_data)
    # plus one sweep-summary W&B run beside them: the trials table, the plot, the test metrics
    (summary_run,) = _wandb_dirs(out / "wandb")
    blob = read_record(summary_run)
    assert b"sweep-summary" in blob and b"test/all/recall@20" in blob
    assert list(summary_run.glob("files/media/table/trials_*.table.json"))
    # running it again does nothing new: every trial is done, test not re-read
    calls: list = []
    again = run_sweep(spec, out, use_wandb=True, online=False,
                      train_fn=_counting(run_train, calls),
                      eval_fn=_counting(evaluate_checkpoint, evals))
    assert calls == [] and len(evals) == 1 and again["selected"]["id"] == best["id"]
    assert len(_wandb_dirs(out)) == 5      # nothing new to report: no second summary run


def test_resume_runs_only_missing_trials_and_no_wandb_files(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data)
    out = tmp_path / "sweep"
    calls: list = []
    with pytest.raises(KeyboardInterrupt):   # killed when the third trial starts
        run_sweep(spec, out, use_wandb=False, online=False,
                  train_fn=_counting(run_train, calls, fail_at=3))
    state = json.loads((out / "state.json").read_text())
    assert [t["status"] for t in state["trials"].values()] == ["finished", "finished", "running"]
    assert not (out / "summary.md").exists()
    done_before = {tid: (out / "trials" / tid / "last.pt").stat().st_mtime_ns
                   for tid in ("t000", "t001")}
    calls.clear()
    result = run_sweep(spec, out, use_wandb=False, online=False,
                       train_fn=_counting(run_train, calls))
    assert [Path(c[1]).name for c in calls] == ["t002", "t003"]
    for tid, mtime in done_before.items():   # finished trials not re-trained
        assert (out / "trials" / tid / "last.pt").stat().st_mtime_ns == mtime
    assert len(result["trials"]) == 4 and result["selected"] is not None
    # --no-wandb: no W&B files anywhere
    assert _wandb_dirs(out) == [] and not list(out.rglob("wandb"))
    # killed after t003 wrote metrics.json but before the state file: done, not re-run
    state = json.loads((out / "state.json").read_text())
    value = state["trials"]["t003"]["value"]
    state["trials"]["t003"].update(status="running", value=None)
    (out / "state.json").write_text(json.dumps(state))
    calls.clear()
    result = run_sweep(spec, out, use_wandb=False, online=False,
                       train_fn=_counting(run_train, calls))
    t003 = next(t for t in result["trials"] if t["id"] == "t003")
    assert calls == [] and t003["status"] == "finished" and t003["value"] == value


def test_bad_value_fails_before_any_trial(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data, parameters={
        "train.negatives": {"values": ["uniform", "hardest"]}})
    with pytest.raises(MrsError, match=r"train\.negatives"):
        Sweep(spec, tmp_path / "sweep", use_wandb=False)
    assert not (tmp_path / "sweep").exists()


def test_changed_spec_refuses_to_resume(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data)
    s = Sweep(spec, tmp_path / "sweep", use_wandb=False)
    s.state.save()
    make_spec(tmp_path, tiny_data, parameters={"train.lr": {"values": [0.1, 0.2]}})
    with pytest.raises(MrsError, match="different sweep"):
        Sweep(spec, tmp_path / "sweep", use_wandb=False)


def test_failed_trial_is_recorded_and_skipped(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data)

    def flaky(cfg, out_dir, **kw):
        if cfg.model.encoder == "lightgcn" and cfg.train.lr == 0.05:
            raise MrsError("loss is nan at epoch 1")
        return run_train(cfg, out_dir, **kw)

    result = run_sweep(spec, tmp_path / "sweep", use_wandb=False, online=False, train_fn=flaky)
    status = {t["id"]: t["status"] for t in result["trials"]}
    assert status == {"t000": "finished", "t001": "finished", "t002": "failed",
                      "t003": "finished"}
    assert result["selected"]["id"] != "t002"
    assert "failed: MrsError: loss is nan" in (tmp_path / "sweep" / "summary.md").read_text()


def test_set_overrides_fixed_values_but_not_swept_ones(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data)          # train.seed is a fixed `value: 3`
    with pytest.raises(MrsError, match=r"'train\.lr' is swept"):
        Sweep(spec, tmp_path / "a", use_wandb=False, overrides=["train.lr=0.1"])
    s = Sweep(spec, tmp_path / "b", use_wandb=False, overrides=["train.seed=11", "model.dim=4"])
    from mrs.sweep.trial import trial_config
    params = s.spec.grid()[0]
    assert "train.seed" not in params
    cfg = trial_config(s.config_cls, s.base, params, s.spec, "t000", False)
    assert (cfg.train.seed, cfg.model.dim, cfg.model.encoder) == (11, 4, "mf")
    assert cfg.wandb.group == "tiny" and cfg.train.select_metric == "recall@20"


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_random_and_bayes_offline(tmp_path, tiny_data, make_spec, method):
    spec = make_spec(tmp_path, tiny_data, method=method, parameters={
        "train.lr": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1},
        "model.encoder": {"values": ["mf", "lightgcn"]}})
    out = tmp_path / "sweep"
    calls: list = []
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, count=3, use_wandb=False, online=False, seed=5,
                  train_fn=_counting(run_train, calls, fail_at=3))
    first = json.loads((out / "state.json").read_text())["trials"]
    result = run_sweep(spec, out, count=3, use_wandb=False, online=False, seed=5)
    trials = {t["id"]: t for t in result["trials"]}
    assert len(trials) == 3 and all(t["status"] == "finished" for t in trials.values())
    for tid in ("t000", "t001"):          # resumed: the finished trials kept their parameters
        assert trials[tid]["params"] == first[tid]["params"]
    assert trials["t002"]["params"] == first["t002"]["params"]   # the interrupted one re-ran as is
    assert all(0.001 <= t["params"]["train.lr"] <= 0.1 for t in trials.values())
    best = max(trials.values(), key=lambda t: t["value"])
    assert result["selected"]["id"] == best["id"]
    with pytest.raises(MrsError, match="--count"):   # random/bayes need a budget
        Sweep(spec, tmp_path / "other", use_wandb=False)


def test_uncomputable_metric_fails_before_any_trial(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data, metric={"name": "valid/ndcg@50", "goal": "maximize"})
    with pytest.raises(MrsError, match=r"metric\.name.*k=50 is not in eval\.ks=\[10, 20\]"):
        Sweep(spec, tmp_path / "sweep", use_wandb=False)
    spec = make_spec(tmp_path, tiny_data, metric={"name": "valid/tail/mrr@20", "goal": "maximize"})
    with pytest.raises(MrsError, match=r"'mrr' is not in eval\.metrics"):
        Sweep(spec, tmp_path / "sweep", use_wandb=False)
