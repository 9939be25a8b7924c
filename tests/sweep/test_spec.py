"""Sweep YAML validation: bad specs fail before any trial starts, naming the key."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mrs.config import valid_keys
from mrs.errors import MrsError
from mrs.sweep.propose import BayesProposer, GridProposer, RandomProposer
from mrs.sweep.spec import load_spec
from mrs.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
KEYS = valid_keys(TrainConfig)


def _spec(tmp_path, **body) -> Path:
    doc = {"method": "grid", "metric": {"name": "valid/recall@20", "goal": "maximize"},
           "parameters": {"train.lr": {"values": [0.1, 0.01]}}}
    doc.update(body)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_shipped_specs_are_valid():
    specs = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
    assert any(p.name == "graph_vs_mf.yaml" for p in specs)
    for p in specs:
        spec = load_spec(p, KEYS)
        assert spec.metric.startswith("valid/")


def test_graph_vs_mf_grid():
    spec = load_spec(REPO / "configs" / "sweeps" / "graph_vs_mf.yaml", KEYS)
    swept = {p.key: p.values for p in spec.swept}
    assert set(swept["model.encoder"]) >= {"mf", "lightgcn"}
    assert swept["model.modes"] == [True, False]
    assert swept["train.negatives"] == ["uniform", "dynamic"]
    grid = spec.grid()
    assert len(grid) == np.prod([len(v) for v in swept.values()])
    assert len({tuple(sorted(map(str, g.items()))) for g in grid}) == len(grid)  # all distinct
    # the W&B copy keeps W&B's keys only
    assert "base_config" not in spec.wandb_config() and spec.wandb_config()["method"] == "grid"


def test_unknown_parameter_names_the_key(tmp_path):
    p = _spec(tmp_path, parameters={"train.lrr": {"values": [0.1]}, "train.lr": {"value": 1}})
    with pytest.raises(MrsError, match=r"parameters\.train\.lrr"):
        load_spec(p, KEYS)


def test_unknown_parameter_suggests_the_dotted_key(tmp_path):
    p = _spec(tmp_path, parameters={"lr": {"values": [0.1, 0.2]}})
    with pytest.raises(MrsError, match=r"'parameters\.lr'.*did you mean 'train\.lr'"):
        load_spec(p, KEYS)


@pytest.mark.parametrize("method", ["hyperband", None, "Grid"])
def test_invalid_method_names_the_key(tmp_path, method):
    with pytest.raises(MrsError, match=r"key 'method'"):
        load_spec(_spec(tmp_path, method=method), KEYS)


def test_other_bad_specs(tmp_path):
    cases = [
        ({"metric": {"name": "test/recall@20", "goal": "maximize"}}, "test set"),
        ({"metric": {"name": "valid/recall@20", "goal": "up"}}, "metric.goal"),
        ({"parameters": {"train.lr": {"min": 0.1, "max": 0.01}}, "method": "random"}, "'min'"),
        ({"parameters": {"train.lr": {"min": 0.001, "max": 0.1}}}, "grid search needs"),
        ({"parameters": {"train.lr": {"value": 0.1}}}, "nothing is swept"),
        ({"parameters": {"train.lr": {"values": [1], "vals": 2}}}, "unknown field 'vals'"),
        ({"early_stop": 3}, "unknown sweep key 'early_stop'"),
        ({"base_config": "nope.yaml"}, "base_config"),
    ]
    for body, match in cases:
        with pytest.raises(MrsError, match=match):
            load_spec(_spec(tmp_path, **body), KEYS)


def test_proposers(tmp_path, make_spec):
    p = _spec(tmp_path, method="random", parameters={
        "train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "model.dim": {"min": 8, "max": 64},
        "model.encoder": {"values": ["mf", "lightgcn"]},
        "train.seed": {"value": 7}})
    spec = load_spec(p, KEYS)
    rnd = RandomProposer(spec, seed=1)
    draws = [rnd.propose(k) for k in range(50)]
    assert draws[3] == RandomProposer(spec, seed=1).propose(3)       # reproducible per index
    assert draws[3] != RandomProposer(spec, seed=2).propose(3)
    assert all(1e-4 <= d["train.lr"] <= 1e-1 and 8 <= d["model.dim"] <= 64 and
               isinstance(d["model.dim"], int) and d["train.seed"] == 7 for d in draws)
    assert {d["model.encoder"] for d in draws} == {"mf", "lightgcn"}
    # bayes: TPE concentrates on the better region of a planted 1-d objective
    spec_b = load_spec(_spec(tmp_path, method="bayes", parameters={
        "train.lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}}), KEYS)
    bo = BayesProposer(spec_b, seed=0)
    xs = []
    for k in range(40):
        x = bo.propose(k)["train.lr"]
        bo.tell(k, {"train.lr": x}, -(x - 0.8) ** 2)   # maximised at 0.8
        xs.append(x)
    assert abs(np.median(xs[-15:]) - 0.8) < 0.15
    # rebuilt from history (a resume), it carries on from the same trials
    resumed = BayesProposer(spec_b, seed=0, history=[({"train.lr": x}, -(x - 0.8) ** 2) for x in xs])
    assert len(resumed.study.trials) == 40
    grid = GridProposer(load_spec(make_spec(tmp_path, tmp_path), KEYS), 0)
    assert grid.size() == 4 and grid.propose(0) == {"train.seed": 3, "model.encoder": "mf",
                                                    "train.lr": 0.05}


def test_metric_lookup_and_selection_metric():
    from mrs.sweep.trial import metric_value, selection_metric

    m = {"valid": {"all": {"recall@20": 0.25}, "tail": {"recall@20": 0.125}},
         "best_valid": 0.25}
    assert metric_value(m, "valid/recall@20") == 0.25          # slice "all" by default
    assert metric_value(m, "valid/tail/recall@20") == 0.125
    assert metric_value(m, "best_valid") == 0.25
    with pytest.raises(MrsError, match="valid/ndcg@20.*not found.*all/recall@20"):
        metric_value(m, "valid/ndcg@20")
    assert selection_metric("valid/recall@20") == "recall@20"
    assert selection_metric("valid/all/ndcg@10") == "ndcg@10"
    assert selection_metric("valid/tail/ndcg@10") is None      # trainer selects on "all" only
    assert selection_metric("loss") is None


def test_plugin_options_can_be_swept(tmp_path):
    """model.options.<plug-in>.<key> are config keys too (checked against the plug-in's Options
    when each trial's config is built, see test_sweep_run), e.g. EASE's λ."""
    p = _spec(tmp_path, parameters={"model.options.ease.lam": {"values": [100, 300]},
                                    "model.encoder": {"value": "ease"}})
    spec = load_spec(p, KEYS)
    assert {q.key: q.values for q in spec.swept} == {"model.options.ease.lam": [100, 300]}
