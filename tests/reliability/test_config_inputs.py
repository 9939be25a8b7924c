"""Issue 23 §20-22: config and sweep inputs that used to fail late or with a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mrs.config import MAX_YAML_DEPTH, parse_override


def _deep_list(n: int) -> str:
    return "model: " + "[" * n + "]" * n + "\n"


def _deep_mapping(n: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "x: 1\n"


@pytest.mark.parametrize("text", [_deep_list(3000), _deep_mapping(2000)], ids=["list3000", "mapping2000"])
def test_deeply_nested_yaml_is_a_one_line_error_naming_the_file(tmp_path, cli_error, text):
    deep = tmp_path / "deep.yaml"
    deep.write_text(text)
    rc, err = cli_error(["train", "--config", str(deep), "--out", str(tmp_path / "run"), "--no-wandb"])
    assert f"{deep}: invalid YAML: nested deeper than {MAX_YAML_DEPTH} levels" in err, err
    assert not (tmp_path / "run").exists()
    rc, err = cli_error(["sweep", str(deep), "--out", str(tmp_path / "sw"), "--no-wandb"])
    assert f"{deep}: invalid YAML: nested deeper" in err, err
    rc, err = cli_error(["compare", "--config", str(deep), "--out", str(tmp_path / "cmp"), "--no-wandb"])
    assert f"{deep}: invalid YAML: nested deeper" in err, err
    # a sweep's base_config is read the same way
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"method": "grid", "metric": {"name": "valid/recall@20"},
                                    "base_config": "deep.yaml",
                                    "parameters": {"train.lr": {"values": [0.1, 0.01]}}}))
    rc, err = cli_error(["sweep", str(spec), "--out", str(tmp_path / "sw2"), "--no-wandb"])
    assert f"{deep}: invalid YAML: nested deeper" in err, err


def test_nesting_up_to_the_limit_still_loads_and_a_deep_override_stays_a_string(tmp_path):
    from mrs.config import read_yaml

    ok = tmp_path / "ok.yaml"
    ok.write_text("a: " + "[" * (MAX_YAML_DEPTH - 2) + "1" + "]" * (MAX_YAML_DEPTH - 2) + "\n")
    node = read_yaml(ok)["a"]
    for _ in range(MAX_YAML_DEPTH - 3):
        node = node[0]
    assert node == [1]
    raw = "[" * 3000 + "]" * 3000
    assert parse_override(f"model.dim={raw}") == (["model", "dim"], raw)  # no RecursionError


# ----------------------------------------------------------------------------- compare baseline
def _compare_config(tmp_path: Path, data: Path, **extra) -> Path:
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"dir": str(data)}, **extra,
                                   "variants": [{"name": "a", "set": {"model.encoder": "mf"}},
                                                {"name": "b", "set": {"model.encoder": "lightgcn"}}]}))
    return cfg


def test_unknown_compare_baseline_is_an_error_before_training(tmp_path, tiny_data, cli_error, monkeypatch):
    import mrs.train.trainer as trainer

    monkeypatch.setattr(trainer, "run_train", lambda *a, **k: pytest.fail("trained"))
    cfg = _compare_config(tmp_path, tiny_data)
    rc, err = cli_error(["compare", "--config", str(cfg), "--out", str(tmp_path / "c1"), "--no-wandb",
                         "--baseline", "zzz"])
    assert "--baseline: unknown variant 'zzz' (variants: a, b)" in err, err
    assert not (tmp_path / "c1").exists()
    cfg = _compare_config(tmp_path, tiny_data, baseline="zzz")
    rc, err = cli_error(["compare", "--config", str(cfg), "--out", str(tmp_path / "c2"), "--no-wandb"])
    assert f"{cfg}: 'baseline': unknown variant 'zzz' (variants: a, b)" in err, err
    assert not (tmp_path / "c2").exists()


def test_default_compare_baseline_is_mf_or_the_first_variant(tmp_path, tiny_data):
    from mrs.train.compare import load_compare

    assert load_compare(_compare_config(tmp_path, tiny_data))[2]["baseline"] == "a"
    assert load_compare(None)[2]["baseline"] == "mf"


# ----------------------------------------------------------------------------- sweep metric slice
def test_sweep_metric_on_an_empty_slice_fails_before_any_trial(tmp_path, tiny_data, cli_error, monkeypatch):
    from mrs.data.prepared import load_prepared
    from mrs.eval import Evaluator
    from mrs.eval.config import EvalConfig
    from mrs.sweep.runner import Sweep
    from tests.sweep.conftest import write_spec

    counts = Evaluator(load_prepared(tiny_data), "valid", EvalConfig(ks=[10, 20])).query_counts()
    assert counts["cold"] == 0 and counts["tail"] > 0  # the premise: no valid query has a cold item
    monkeypatch.setattr("mrs.train.trainer.run_train", lambda *a, **k: pytest.fail("a trial ran"))
    spec = write_spec(tmp_path, tiny_data, metric={"name": "valid/cold/recall@20", "goal": "maximize"})
    rc, err = cli_error(["sweep", str(spec), "--out", str(tmp_path / "sw"), "--no-wandb"])
    assert "'valid/cold/recall@20'" in err and f"slice 'cold' has no valid queries in {tiny_data}" in err, err
    assert f"slices with queries: all ({counts['all']}), tail ({counts['tail']})" in err, err
    # a slice with queries passes (and the data is read once for the whole spec)
    spec = write_spec(tmp_path, tiny_data, metric={"name": "valid/tail/recall@20", "goal": "maximize"})
    sweep = Sweep(spec, tmp_path / "ok", use_wandb=False)
    assert list(sweep._query_counts.values()) == [counts]
