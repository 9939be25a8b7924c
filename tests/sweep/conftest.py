"""A tiny planted dataset and a 4-trial grid spec, shared by the sweep tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

# Small and quick: a trial is a few epochs of a dim-8 model on 60 users x 80 items.
BASE = {
    "train": {"epochs": 2, "batch_size": 256, "patience": 0, "num_threads": 1},
    "model": {"dim": 8, "layers": 1},
    "eval": {"ks": [10, 20], "bootstrap": 0},
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from mrs.synth import make_prepared

    return make_prepared(tmp_path_factory.mktemp("sweepdata") / "data", n_users=60, n_items=80,
                         n_interactions=1500, seed=0)


def write_spec(tmp: Path, data_dir: Path, method: str = "grid", parameters: dict | None = None,
               **extra) -> Path:
    """A spec file plus its base config (``base_config`` relative to the spec)."""
    (tmp / "base.yaml").write_text(yaml.safe_dump({**BASE, "data": {"dir": str(data_dir)}}))
    spec = {"name": "tiny", "method": method,
            "metric": {"name": "valid/recall@20", "goal": "maximize"},
            "base_config": "base.yaml",
            "parameters": parameters or {"model.encoder": {"values": ["mf", "lightgcn"]},
                                         "train.lr": {"values": [0.05, 0.001]},
                                         "train.seed": {"value": 3}},
            **extra}
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def make_spec():
    """``make_spec(tmp, data_dir, method="grid", parameters=None, **extra) -> spec path``."""
    return write_spec
