"""Issue 23 §6, 17, 18: checkpoints carry a checksum that every load verifies, export refuses an
unfinished run, a full disk while checkpointing is one line, and a killed write's temporary is
removed by the next start."""
from __future__ import annotations

import errno
import os
import shutil

import pytest
import torch

from mrs.cli import main
from mrs.errors import MrsError
from mrs.train.checkpoint import BEST, LAST, load_weights, save_weights
from tests.train.conftest import tiny_overrides


def _sets(overrides):
    return sum((["--set", o] for o in overrides), [])


def _zero_inside_largest_tensor(path):
    """Zero 64 bytes in the middle of the file's largest tensor (as a bad disk or copy would)."""
    payload = torch.load(path, weights_only=True)
    t = max(payload["model"].values(), key=lambda v: v.numel())
    raw, data = t.contiguous().numpy().tobytes(), bytearray(path.read_bytes())
    start = data.find(raw)
    assert start > 0 and len(raw) >= 128
    mid = start + len(raw) // 2
    data[mid:mid + 64] = bytes(64)
    path.write_bytes(bytes(data))


def test_a_corrupted_best_pt_is_refused_by_export(tiny_run, tmp_path, cli_error):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    _zero_inside_largest_tensor(run / BEST)
    rc, err = cli_error(["export", str(run), "--out", str(tmp_path / "model"), "--index", "none"])
    assert f"{run / BEST}: damaged: its content does not match the sha256 checksum" in err
    assert not (tmp_path / "model").exists()


def test_a_corrupted_last_pt_is_refused_on_resume(tiny_data, tiny_run, tmp_path, cli_error):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    _zero_inside_largest_tensor(run / LAST)
    rc, err = cli_error(["train", "--out", str(run), "--resume", "--no-wandb",
                         *_sets(tiny_overrides(tiny_data, eval__bootstrap=0, wandb__enabled="false",
                                               train__epochs=2))])
    assert f"{run / LAST}: damaged" in err


def test_checkpoints_without_a_checksum_still_load(tmp_path):
    model = torch.nn.Linear(4, 3)
    torch.save({"model": model.state_dict(), "epoch": 7}, tmp_path / "old.pt")  # an older mrs's file
    assert load_weights(tmp_path / "old.pt", torch.nn.Linear(4, 3)) == 7
    save_weights(tmp_path / "new.pt", model, 3)
    assert "checksum" in torch.load(tmp_path / "new.pt", weights_only=True)
    assert load_weights(tmp_path / "new.pt", torch.nn.Linear(4, 3)) == 3
    bad = torch.load(tmp_path / "new.pt", weights_only=True)
    bad["model"]["bias"][0] += 1  # a changed value with the old checksum
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(MrsError, match="damaged"):
        load_weights(tmp_path / "bad.pt", torch.nn.Linear(4, 3))


def test_an_unfinished_run_needs_allow_unfinished(tiny_run, tmp_path, cli_error):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "metrics.json").unlink()  # killed before the end
    rc, err = cli_error(["export", str(run), "--out", str(tmp_path / "model"), "--index", "none"])
    assert "an unfinished run (no metrics.json" in err and "--allow-unfinished" in err
    assert not (tmp_path / "model").exists()
    assert main(["export", str(run), "--out", str(tmp_path / "model"), "--index", "none",
                 "--allow-unfinished"]) == 0


class _FullDisk:
    """What torch.save writes to when the disk is full: every write fails with ENOSPC."""

    def __init__(self, f):
        self.f = f

    def write(self, b):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        pass


def test_a_full_disk_while_checkpointing_is_one_line(tiny_data, tmp_path, monkeypatch, cli_error):
    real = torch.save

    def save(obj, f, *a, **k):  # a path is opened here the way torch's own writer would
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as fh:
                return real(obj, _FullDisk(fh), *a, **k)
        return real(obj, _FullDisk(f), *a, **k)

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    rc, err = cli_error(["train", "--out", str(run), "--no-wandb",
                         *_sets(tiny_overrides(tiny_data, eval__bootstrap=0, wandb__enabled="false"))])
    assert f"no space left on device: {run} (writing last.pt)" in err or \
        f"no space left on device: {run} (writing best.pt)" in err
    assert not run.exists() or not [p for p in run.iterdir() if ".tmp-" in p.name]


def test_a_killed_checkpoint_writes_temporary_is_removed_on_resume(tiny_data, tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    stale = [run / ".last.pt.tmp-abc123", run / ".best.pt.tmp-x", run / ".metrics.json.tmp-y"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    (run / ".notes.tmp-mine").write_text("a user's file")
    assert main(["train", "--out", str(run), "--resume", "--no-wandb",
                 *_sets(tiny_overrides(tiny_data, eval__bootstrap=0, wandb__enabled="false",
                                       train__epochs=2))]) == 0
    assert not any(p.exists() for p in stale)
    assert (run / ".notes.tmp-mine").read_text() == "a user's file"
