from dataclasses import dataclass, field
from typing import Literal

import pytest

from mrs.config import load_config, valid_keys
from mrs.errors import MrsError


@dataclass
class Model:
    encoder: Literal["mf", "lightgcn"] = "mf"
    dim: int = 64


@dataclass
class Cfg:
    model: Model = field(default_factory=Model)
    lr: float = 1e-3
    tags: list[str] = field(default_factory=list)


def test_defaults_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  dim: 32\nlr: 0.01\n")
    cfg = load_config(Cfg, p, ["model.encoder=lightgcn", "tags=[a, b]"])
    assert cfg.model == Model("lightgcn", 32) and cfg.lr == 0.01 and cfg.tags == ["a", "b"]


def test_unknown_key_names_full_path():
    with pytest.raises(MrsError, match="'model.dims'"):
        load_config(Cfg, overrides=["model.dims=3"])


def test_bad_choice_and_type():
    with pytest.raises(MrsError, match="model.encoder"):
        load_config(Cfg, overrides=["model.encoder=gcn"])
    with pytest.raises(MrsError, match="model.dim"):
        load_config(Cfg, overrides=["model.dim=abc"])


def test_valid_keys():
    assert valid_keys(Cfg) == ["model.encoder", "model.dim", "lr", "tags"]


def test_unparseable_yaml_value_stays_a_string():
    @dataclass
    class C:
        start: str = ""
    assert load_config(C, overrides=["start=2020-13-01"]).start == "2020-13-01"
