"""Helpers for the issue-13 regression tests: run a CLI command and get its one-line error."""
from __future__ import annotations

import pytest

from mrs.cli import main


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv) -> (rc, stderr's error line)``; asserts the error is one line, no traceback."""

    def run(argv: list[str]) -> tuple[int, str]:
        capsys.readouterr()
        rc = main(argv)
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mrs ")]
        assert rc != 0, f"expected a failure, got rc {rc}"
        assert len(err) == 1, err
        return rc, err[0]

    return run


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The trainer tests' tiny planted dataset (modes, two 8-d feature stores)."""
    from mrs.synth import make_prepared

    return make_prepared(tmp_path_factory.mktemp("tiny") / "ds", n_users=60, n_items=80,
                         n_interactions=1500, seed=0, modes=True, features_dim=8)


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A finished one-epoch run on ``tiny_data`` (read-only for tests: copy it to change it)."""
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train
    from tests.train.conftest import tiny_overrides

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    run_train(load_train_config(None, tiny_overrides(tiny_data, eval__bootstrap=0, wandb__enabled="false")), run)
    return run


@pytest.fixture(scope="session")
def tiny_model(tiny_run, tmp_path_factory):
    """``tiny_run`` exported with its HNSW index, as ``mrs export`` does (read-only for tests)."""
    out = tmp_path_factory.mktemp("tiny_model") / "model"
    assert main(["export", str(tiny_run), "--out", str(out)]) == 0
    return out
