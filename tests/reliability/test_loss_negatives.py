"""Issue 23, point 19: ``sampled_softmax`` with ``model.loss_negatives`` (formerly
``seq_negatives``) 0 trained nothing (loss ~0, rc 0) and -3 was a traceback."""
from __future__ import annotations

import pytest

from mrs.cli import main
from tests.train.conftest import tiny_overrides


@pytest.mark.parametrize("k", [0, -3])
def test_loss_negatives_below_one_is_a_one_line_error(tiny_data, tmp_path, capsys, k):
    sets = tiny_overrides(tiny_data, model__user_encoder="sasrec", model__loss="sampled_softmax",
                          model__loss_negatives=k, model__seq_len=6)
    rc = main(["train", *[a for s in sets for a in ("--set", s)], "--no-wandb", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "model.loss_negatives" in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "run").exists()


def test_one_negative_is_accepted(tiny_data, tmp_path):
    """The key exists and 1 is its smallest value (so the error above is about the value)."""
    sets = tiny_overrides(tiny_data, model__user_encoder="sasrec", model__loss="sampled_softmax",
                          model__loss_negatives=1, model__seq_len=6, eval__bootstrap=0)
    assert main(["train", *[a for s in sets for a in ("--set", s)], "--no-wandb", "--out", str(tmp_path / "run")]) == 0
