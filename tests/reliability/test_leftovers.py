"""Issue 13 §6: failed runs leave no run directory behind, splits are checked before training,
stop messages are true, a finite divergence stops, and results get the user's umask."""
from __future__ import annotations

import os
import stat

import pytest

from mrs.cli import main
from mrs.data.prepared import SPLITS, load_prepared, write_prepared
from mrs.errors import MrsError
from mrs.train import trainer as trainer_mod
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train
from tests.train.conftest import tiny_overrides


def _sets(overrides):
    return sum((["--set", o] for o in overrides), [])


def _without(tiny_data, root, split: str):
    """A copy of the tiny dataset whose ``split`` rows are all moved to train."""
    ds = load_prepared(tiny_data)
    inter = ds.interactions.copy()
    inter.loc[inter["split"] == SPLITS[split], "split"] = 0
    return write_prepared(root, inter, ds.items, ds.users, name="t", source="test", modes=ds.meta["modes"],
                          params={}, input_checksum="x")


@pytest.mark.parametrize("split", ["valid", "test"])
def test_missing_split_fails_before_training_and_leaves_no_run_dir(tiny_data, tmp_path, monkeypatch,
                                                                   cli_error, split):
    data = _without(tiny_data, tmp_path / "ds", split)
    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", lambda *a: pytest.fail("trained first"))
    out = tmp_path / "run"
    rc, err = cli_error(["train", "--out", str(out), "--no-wandb", *_sets(tiny_overrides(data))])
    assert f"no {split} interactions" in err
    assert not out.exists()
    if split == "test":  # the test split is not needed when it is not read
        monkeypatch.undo()
        assert main(["train", "--out", str(out), "--no-wandb", "--no-test", *_sets(tiny_overrides(data))]) == 0


def test_nan_in_the_first_epoch_names_no_phantom_checkpoint_and_a_rerun_works(tiny_data, tmp_path, monkeypatch):
    from mrs.models.model import CPRecommender

    original = CPRecommender.calculate_loss
    monkeypatch.setattr(CPRecommender, "calculate_loss",
                        lambda self, b, emb=None: (lambda lp: (lp[0] * float("nan"), lp[1]))(original(self, b, emb)))
    cfg = load_train_config(None, tiny_overrides(tiny_data, train__epochs=2))
    with pytest.raises(MrsError) as e:
        run_train(cfg, tmp_path / "run")
    assert "epoch 0" not in str(e.value) and "no epoch finished, so nothing was checkpointed" in str(e.value)
    assert not (tmp_path / "run").exists()                 # nothing to resume: nothing left behind
    monkeypatch.undo()
    assert run_train(cfg, tmp_path / "run")["epochs_run"] == 2   # the same command simply works now


def test_finite_divergence_stops_with_a_clear_error(tiny_data, tmp_path, cli_error):
    out = tmp_path / "run"
    rc, err = cli_error(["train", "--out", str(out), "--no-wandb",
                         *_sets(tiny_overrides(tiny_data, train__lr=2e8, train__epochs=3))])
    assert "training diverged: mean BPR loss" in err and "lower train.lr (now 2e+08)" in err
    assert not (out / "metrics.json").exists()


def test_results_get_the_umask_permissions(tiny_data, tmp_path):
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        run_train(load_train_config(None, tiny_overrides(tiny_data)), run)
        assert main(["synth", "--out", str(tmp_path / "raw"), "--users", "20", "--items", "30",
                     "--interactions", "200", "--no-images"]) == 0
        files = [run / n for n in ("config.yaml", "metrics.json", "last.pt", "best.pt", "curves.png")]
        files += [tmp_path / "raw" / "planted.npz", tmp_path / "raw" / "planted.json"]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        assert modes == {p.name: 0o644 for p in files}
    finally:
        os.umask(old)
