"""Tiny planted datasets shared by the trainer tests (built once per session)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A planted prepared dataset with context/time modes and two 8-d feature stores."""
    from mrs.synth import make_prepared

    return make_prepared(tmp_path_factory.mktemp("tiny") / "ds", n_users=60, n_items=80,
                         n_interactions=1500, seed=0, modes=True, features_dim=8)


def tiny_overrides(data_dir, **kw) -> list[str]:
    """Fast settings: small dims, few epochs, cheap bootstrap; ``kw`` as ``section__key=value``."""
    base = {"data.dir": str(data_dir), "model.dim": 8, "model.joint_dim": 8, "train.epochs": 1,
            "train.batch_size": 256, "train.lr": 0.01, "train.device": "cpu",
            "eval.bootstrap": 20, "eval.ks": [5, 20]}
    base.update({k.replace("__", "."): v for k, v in kw.items()})
    return [f"{k}={v}" for k, v in base.items()]


def cli_train(data_dir, out_dir, **kw) -> dict:
    """``mrs train`` (the CLI entry point) on ``data_dir`` with :func:`tiny_overrides` and ``kw``;
    asserts it succeeded and returns the run's ``metrics.json``."""
    import json

    from mrs.cli import main

    sets = [a for s in tiny_overrides(data_dir, train__num_threads=1, eval__bootstrap=0, **kw) for a in ("--set", s)]
    assert main(["train", *sets, "--no-wandb", "--out", str(out_dir)]) == 0
    return json.loads((out_dir / "metrics.json").read_text())


def train_refused(data_dir, out_dir, match: str, **kw) -> None:
    """``run_train`` with :func:`tiny_overrides` and ``kw`` fails with a one-line ``MrsError``
    matching ``match``, leaving no run directory."""
    import pytest

    from mrs.errors import MrsError
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    with pytest.raises(MrsError, match=match) as e:
        run_train(load_train_config(None, tiny_overrides(data_dir, **kw)), out_dir)
    assert "\n" not in str(e.value) and not out_dir.exists()


def fake_torchrun(monkeypatch, world_size: int = 2) -> None:
    """Make ``run_train`` believe it runs under torchrun (rank 0 of ``world_size``)."""
    from mrs.train import trainer
    from mrs.train.distributed import Dist

    monkeypatch.setattr(trainer, "init_distributed", lambda device: Dist(rank=0, world_size=world_size))
