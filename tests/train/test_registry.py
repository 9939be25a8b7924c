"""A new encoder is one class registered in one place: config validation, ``mrs compare``'s
default variants, the CLI help and training all pick it up without editing another file."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from mrs.errors import MrsError
from mrs.models.base import ENCODERS, Encoder
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train
from tests.train.conftest import tiny_overrides


class ToyEncoder(Encoder):
    """Toy: ego rows through one shared learned linear map."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(dim, dim, bias=False)
        self.epochs_seen: list[int] = []

    built: list["ToyEncoder"] = []  # instances, so the test can look at the hook's calls

    @classmethod
    def from_config(cls, cfg, ctx) -> "ToyEncoder":
        cls.built.append(cls(cfg.dim))
        return cls.built[-1]

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        self.epochs_seen.append(epoch)

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        return self.lin(user_ego), self.lin(item_ego)


@pytest.fixture
def toy():
    ENCODERS.register("toy")(ToyEncoder)
    yield ToyEncoder
    ENCODERS.unregister("toy")


def test_toy_encoder_registers_and_trains_one_epoch(toy, tiny_data, tmp_path):
    ToyEncoder.built.clear()
    cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder="toy", wandb__enabled="false"))
    metrics = run_train(cfg, tmp_path / "run")
    assert ToyEncoder.built and ToyEncoder.built[0].epochs_seen == [0]  # the per-epoch hook ran through the interface
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"] == 1
    assert metrics["test"]["all"]["recall@20"] >= 0


def test_registry_feeds_config_compare_and_help(toy, capsys):
    from mrs.cli import main
    from mrs.train.compare import default_variants

    assert load_train_config(None, ["model.encoder=toy"]).model.encoder == "toy"
    assert {"toy", "toy+cp"} <= {v["name"] for v in default_variants()}
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "toy: Toy: ego rows through one shared learned linear map" in capsys.readouterr().out


def test_unknown_plugin_names_the_key_and_the_choices():
    with pytest.raises(MrsError, match=r"config key 'model.encoder': 'gcn' is not one of \['mf', 'lightgcn', 'freedom'"):
        load_train_config(None, ["model.encoder=gcn"])
    with pytest.raises(MrsError, match=r"config key 'model.fusion': 'sum' is not one of \['none', 'concat'"):
        load_train_config(None, ["model.fusion=sum"])


def test_a_name_registers_once():
    with pytest.raises(MrsError, match="encoder 'mf' is already registered"):
        ENCODERS.register("mf")(ToyEncoder)


@dataclass
class ScaleOptions:
    scale: float = 1.0  # multiplies the toy's output


class ScaledToy(ToyEncoder):
    """Scaled toy: a plug-in with options of its own."""

    Options = ScaleOptions

    @classmethod
    def from_config(cls, cfg, ctx) -> "ScaledToy":
        enc = cls(cfg.dim)
        enc.scale = cls.options(cfg).scale
        return enc

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        return self.scale * self.lin(user_ego), self.lin(item_ego)


def test_plugin_options_live_under_model_options(tiny_data):
    from mrs.models.config import build_model
    from mrs.train.data import train_triples
    from mrs.data.prepared import load_prepared

    ENCODERS.register("scaled_toy")(ScaledToy)
    try:
        cfg = load_train_config(None, ["model.encoder=scaled_toy", "model.options.scaled_toy.scale=2.5",
                                       "model.dim=4"])
        ds = load_prepared(tiny_data)
        t = train_triples(ds)
        m = build_model(cfg.model, n_users=ds.n_users, n_items=ds.n_items, mode_cardinalities=[],
                        train_users=t.users.numpy(), train_items=t.items.numpy())
        assert m.encoder.scale == 2.5
        with pytest.raises(MrsError, match=r"unknown config key 'model.options.scaled_toy.scal'"):
            load_train_config(None, ["model.encoder=scaled_toy", "model.options.scaled_toy.scal=2"])
        with pytest.raises(MrsError, match=r"'model.options.lightgcn': plug-in 'lightgcn' takes no options"):
            load_train_config(None, ["model.options.lightgcn.scale=2"])
        with pytest.raises(MrsError, match=r"'model.options.scaled_toy': no selected plug-in"):
            load_train_config(None, ["model.options.scaled_toy.scale=2"])
    finally:
        ENCODERS.unregister("scaled_toy")
