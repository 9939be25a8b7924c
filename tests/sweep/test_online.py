"""The online path (wandb.sweep + wandb.agent) with W&B's server replaced by a local fake agent.

The fake does what W&B's agent does for a function trial: writes the controller's parameters to
a file, points ``WANDB_SWEEP_PARAM_PATH``/``WANDB_SWEEP_ID`` at it, tears wandb's setup down and
calls the function; the real ``wandb.init`` (offline here) then loads them into ``run.config``.
"""
from __future__ import annotations

import json

import yaml

from mrs.sweep import Sweep


def test_online_agent_path(tmp_path, tiny_data, make_spec, monkeypatch):
    import wandb

    spec_path = make_spec(tmp_path, tiny_data)
    sweep = Sweep(spec_path, tmp_path / "sweep", use_wandb=True, project="mrs-test")
    proposals = [{"model.encoder": "lightgcn", "train.lr": 0.05, "train.seed": 3},
                 {"model.encoder": "mf", "train.lr": 0.001, "train.seed": 3}]
    registered = {}

    def fake_sweep(config, entity=None, project=None):
        registered.update(config=config, project=project)
        return "swp123"

    def fake_agent(sweep_id, function=None, count=None, entity=None, project=None):
        registered["count"] = count
        for i, params in enumerate(proposals[:count]):
            path = tmp_path / f"sweep-params-{i}.yaml"
            path.write_text(yaml.safe_dump({k: {"value": v} for k, v in params.items()}))
            monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(path))
            monkeypatch.setenv("WANDB_SWEEP_ID", sweep_id)
            wandb.teardown()
            function()
        monkeypatch.delenv("WANDB_SWEEP_PARAM_PATH")
        monkeypatch.delenv("WANDB_SWEEP_ID")
        wandb.teardown()

    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    monkeypatch.setattr(wandb, "agent", fake_agent)
    sweep.count = 2
    result = sweep.run(online=True)
    # the spec went to W&B without mrs's own keys
    assert registered["config"]["method"] == "grid" and "base_config" not in registered["config"]
    assert registered["project"] == "mrs-test" and registered["count"] == 2
    trials = {t["id"]: t for t in result["trials"]}
    assert [trials[t]["params"]["model.encoder"] for t in ("t000", "t001")] == ["lightgcn", "mf"]
    assert trials["t000"]["params"]["train.lr"] == 0.05
    cfg0 = yaml.safe_load((tmp_path / "sweep" / "trials" / "t000" / "config.yaml").read_text())
    assert cfg0["model"]["encoder"] == "lightgcn" and cfg0["train"]["lr"] == 0.05
    state = json.loads((tmp_path / "sweep" / "state.json").read_text())
    assert state["sweep_id"] == "swp123"
    best = max(result["trials"], key=lambda t: t["value"])
    assert result["selected"]["id"] == best["id"] and result["selected"]["test"]
    assert len(list((tmp_path / "sweep" / "trials").rglob("offline-run-*"))) == 2
