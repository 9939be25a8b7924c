"""make_logger / WandbLogger: offline run files inside the run dir, robust, no files when off."""
from __future__ import annotations

import logging
from pathlib import Path


from mrs.tracking import NullLogger, make_logger, provenance
from mrs.tracking.wandb_logger import WandbLogger, flatten, resolve_mode


def _wandb_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "wandb" in p.name]


def test_disabled_is_null_and_writes_nothing(tmp_path):
    lg = make_logger(False)
    assert isinstance(lg, NullLogger)
    lg.start({"a": 1}, tmp_path / "run")
    lg.log_epoch(0, {"loss": 1.0})
    lg.finish()
    assert _wandb_files(tmp_path) == []


def test_mode_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_mode() == "offline"          # no account: offline
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode() == "online"           # logged in: online
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode() == "offline"          # the user's choice wins
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert resolve_mode() == "online"           # `wandb login` writes netrc
    (tmp_path / "netrc").write_text("machine api.forge.coreweave.com\n  login user\n  password "
                                    + "k" * 40 + "\n")
    assert resolve_mode() == "online"           # newer wandb's default host
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert resolve_mode() == "offline"          # a private server: its own netrc entry needed


def test_flatten():
    assert flatten({"all": {"recall@20": 0.1, "ci": [0, 1]}, "n": 3}) == {
        "all/recall@20": 0.1, "all/ci": [0, 1], "n": 3}


def test_provenance_has_git_and_versions():
    p = provenance()
    assert set(p) == {"git", "versions", "python"}
    assert p["versions"]["numpy"] and p["versions"]["wandb"]
    commit = p["git"]["commit"]
    assert commit is None or len(commit) == 40


def test_offline_run_inside_run_dir(tmp_path, monkeypatch, read_record):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    lg = make_logger(True, project="mrs-test")
    assert isinstance(lg, WandbLogger)
    lg.start({"model": {"encoder": "lightgcn"}}, run_dir, name="t", group="g")
    for e in range(2):
        lg.log_epoch(e, {"loss": 1.0 / (e + 1), "valid": {"recall@20": 0.25}})
    lg.log_table("slices", ["slice", "recall@20"], [["all", 0.25], ["tail", 0.125]])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.figure(); plt.plot([0, 1]); plt.savefig(run_dir / "plot.png"); plt.close()
    lg.log_image("compare", run_dir / "plot.png")
    lg.log_image("nope", run_dir / "missing.png")    # warned and skipped, run continues
    lg.log_summary({"all": {"recall@20": 0.3125}})
    lg.finish()
    lg.finish()                                       # idempotent
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    blob = read_record(runs[0])
    # The transaction log carries the config (with provenance), epochs and the summary.
    assert b"lightgcn" in blob and b"provenance" in blob and b"valid/recall@20" in blob
    assert b"all/recall@20" in blob and b"0.3125" in blob
    assert list(runs[0].glob("files/media/table/slices_*.table.json"))
    assert list(runs[0].glob("files/media/images/compare_*.png"))
    assert not list(runs[0].glob("files/media/images/nope_*"))


def test_wandb_failure_warns_once_and_continues(tmp_path, monkeypatch, caplog):
    import wandb

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(wandb, "init", boom)
    monkeypatch.setattr("mrs.tracking.wandb_logger._warned", False)
    lg = make_logger(True)
    with caplog.at_level(logging.WARNING, logger="mrs.tracking.wandb_logger"):
        lg.start({"a": 1}, tmp_path / "run")
        lg.log_epoch(0, {"loss": 1.0})        # no-ops, no exceptions
        lg.log_summary({"x": 1})
        lg.finish()
        lg.start({"a": 1}, tmp_path / "run2")  # second failure: not warned again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "disk on fire" in warnings[0].getMessage()


def test_bad_table_costs_only_that_table(tmp_path, monkeypatch, read_record):
    monkeypatch.setenv("WANDB_MODE", "offline")
    lg = make_logger(True)
    lg.start({"a": 1}, tmp_path / "run")
    lg.log_table("bad", ["x"], [[1, 2, 3]])           # row longer than the columns: wandb raises
    lg.log_epoch(1, {"loss": 0.5})                     # the run goes on
    lg.log_summary({"kept": 0.875})
    lg.finish()
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    blob = read_record(run)
    assert b"kept" in blob and b"0.875" in blob
    assert not list(run.glob("files/media/table/bad_*"))
