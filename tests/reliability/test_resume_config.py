"""Resuming checks the saved config: a real change is refused, a key added to mrs since the
run started (absent from its config.yaml) takes its default and does not block the resume."""
from __future__ import annotations

import pytest
import yaml

from mrs.errors import MrsError
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train
from tests.train.conftest import tiny_overrides


@pytest.fixture
def one_epoch_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    run_train(load_train_config(None, tiny_overrides(tiny_data, train__epochs=1)), run)
    return run


def _drop_saved_key(run, section: str, key: str) -> None:
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved[section][key]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))


def test_a_key_missing_from_an_older_config_takes_its_default_on_resume(tiny_data, one_epoch_run):
    _drop_saved_key(one_epoch_run, "train", "malloc")   # as written before train.malloc existed
    res = run_train(load_train_config(None, tiny_overrides(tiny_data, train__epochs=2)), one_epoch_run, resume=True)
    assert len(res["history"]) == 2


def test_a_missing_key_whose_new_value_is_not_the_default_is_refused(tiny_data, one_epoch_run):
    _drop_saved_key(one_epoch_run, "train", "malloc")
    cfg = load_train_config(None, tiny_overrides(tiny_data, train__epochs=2, train__malloc="heap"))
    with pytest.raises(MrsError, match=r"resuming with a different config \(train.malloc: 'mmap' -> 'heap'\)"):
        run_train(cfg, one_epoch_run, resume=True)


def test_a_changed_value_is_refused(tiny_data, one_epoch_run):
    cfg = load_train_config(None, tiny_overrides(tiny_data, train__epochs=2, train__lr=0.5))
    with pytest.raises(MrsError, match=r"resuming with a different config \(train.lr: "):
        run_train(cfg, one_epoch_run, resume=True)
