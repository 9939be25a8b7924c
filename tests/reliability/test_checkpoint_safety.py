"""Issue 13 §2: checkpoints are read with ``weights_only=True``; a crafted one runs nothing."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from mrs.errors import MrsError
from mrs.train.checkpoint import BEST, LAST
from mrs.train.config import load_train_config
from mrs.train.trainer import evaluate_checkpoint, run_train
from tests.train.conftest import tiny_overrides


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def trained_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    run_train(load_train_config(None, tiny_overrides(tiny_data, train__epochs=1)), run)
    return run


def test_crafted_last_pt_is_refused_on_resume_and_runs_nothing(tiny_data, trained_run, tmp_path, cli_error):
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(marker), "state": {"epoch": 0}}, trained_run / LAST)
    argv = ["train", "--out", str(trained_run), "--resume", "--no-wandb",
            *sum((["--set", o] for o in tiny_overrides(tiny_data, train__epochs=2)), [])]
    rc, err = cli_error(argv)
    assert f"{trained_run / LAST}: refused to load this checkpoint" in err
    assert "unsupported GLOBAL posix.system" in err.replace("Unsupported global: GLOBAL", "unsupported GLOBAL")
    assert not marker.exists()
    # a plain pickle (not torch's zip format) is refused the same way
    (trained_run / LAST).write_bytes(pickle.dumps({"model": _Payload(marker)}))
    rc, err = cli_error(argv)
    assert "refused to load this checkpoint" in err and not marker.exists()


def test_crafted_best_pt_is_refused_by_evaluation(trained_run, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(marker), "epoch": 1}, trained_run / BEST)
    with pytest.raises(MrsError, match="refused to load this checkpoint"):
        evaluate_checkpoint(trained_run, "test")   # what compare and the sweep call
    assert not marker.exists()


def test_own_checkpoints_load_with_weights_only(trained_run):
    last = torch.load(trained_run / LAST, weights_only=True)
    assert last["state"]["epoch"] == 1 and set(last["rng"]) >= {"python", "numpy", "torch", "generator"}
    assert torch.load(trained_run / BEST, weights_only=True)["epoch"] == 1


def test_truncated_checkpoint_is_a_one_line_error(tiny_data, trained_run, cli_error):
    data = (trained_run / LAST).read_bytes()
    (trained_run / LAST).write_bytes(data[: len(data) // 2])
    rc, err = cli_error(["train", "--out", str(trained_run), "--resume", "--no-wandb",
                         *sum((["--set", o] for o in tiny_overrides(tiny_data, train__epochs=2)), [])])
    assert f"{trained_run / LAST}: cannot read checkpoint" in err
