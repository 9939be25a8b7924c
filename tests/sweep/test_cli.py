"""``mrs sweep`` as a user runs it: one-line errors, and a sweep killed with SIGKILL resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

MRS = [sys.executable, "-m", "mrs"]


def _run(args, **kw):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run(MRS + args, capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.mark.parametrize("body, key", [
    ({"method": "annealing"}, "key 'method'"),
    ({"parameters": {"model.encodr": {"values": ["mf", "lightgcn"]}}}, "parameters.model.encodr"),
])
def test_bad_spec_is_one_line_error(tmp_path, tiny_data, make_spec, body, key, capsys):
    from mrs.cli import main   # in-process: the same parser and error path as the `mrs` command

    spec = make_spec(tmp_path, tiny_data)
    doc = yaml.safe_load(spec.read_text())
    doc.update(body)
    spec.write_text(yaml.safe_dump(doc))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrs sweep: error:") and key in err[0]
    assert not (tmp_path / "out").exists()   # failed before any trial


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume(tmp_path, tiny_data, make_spec):
    spec = make_spec(tmp_path, tiny_data)
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["train"]["epochs"] = 15            # a few seconds per trial, so the kill lands mid-sweep
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    out = tmp_path / "out"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.Popen(MRS + ["sweep", str(spec), "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = out / "state.json"
    deadline = time.time() + 240
    done: list[str] = []
    while time.time() < deadline and proc.poll() is None:
        if state_path.is_file():
            trials = json.loads(state_path.read_text())["trials"].values()
            done = [t["id"] for t in trials if t["status"] == "finished"]
            if len(done) >= 2:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(done) < 4
    # last.pt is rewritten every epoch: unchanged means not re-trained (metrics.json of the
    # selected trial does change: its test metrics are added at the end)
    mtimes = {t: (out / "trials" / t / "last.pt").stat().st_mtime_ns for t in done}
    r = _run(["sweep", str(spec), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    state = json.loads(state_path.read_text())
    assert [t["status"] for t in state["trials"].values()] == ["finished"] * 4
    for t, m in mtimes.items():          # finished trials were not re-run
        assert (out / "trials" / t / "last.pt").stat().st_mtime_ns == m
    # trials done before the kill have one W&B run; resumed ones may also hold the killed one
    for t in done:
        assert len(list((out / "trials" / t).rglob("offline-run-*"))) == 1
    assert state["selected"]["id"] in {t for t in state["trials"]} and state["selected"]["test"]
    assert "selected" in r.stdout


def test_dry_run_lists_trials_and_writes_nothing(tmp_path, tiny_data, make_spec, capsys):
    from mrs.cli import main

    spec = make_spec(tmp_path, tiny_data)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("sweep tiny: method grid, 4 trials")
    assert lines[1:] == ["t000 [todo] model.encoder=mf train.lr=0.05",
                         "t001 [todo] model.encoder=mf train.lr=0.001",
                         "t002 [todo] model.encoder=lightgcn train.lr=0.05",
                         "t003 [todo] model.encoder=lightgcn train.lr=0.001"]
    assert not (tmp_path / "out").exists()
