"""The real trainer through WandbLogger: what `mrs train` leaves in W&B, and with --no-wandb."""
from __future__ import annotations

import logging

from mrs.synth import make_prepared
from mrs.tracking import make_logger
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train

SMALL = ["train.epochs=2", "train.batch_size=256", "model.dim=8", "model.layers=1",
         "eval.ks=[10,20]", "eval.bootstrap=0"]


def test_run_train_logs_to_offline_wandb(tmp_path, monkeypatch, caplog, read_record):
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = make_prepared(tmp_path / "data", n_users=50, n_items=60, n_interactions=1000)
    cfg = load_train_config(None, [f"data.dir={data}", *SMALL])
    with caplog.at_level(logging.WARNING, logger="mrs.tracking.wandb_logger"):
        metrics = run_train(cfg, tmp_path / "run", logger=make_logger(True, project="mrs-test"))
    assert not caplog.records               # every hook the trainer used worked
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    blob = read_record(run)
    assert b"valid/recall@20" in blob and b"epoch" in blob and b"provenance" in blob
    assert b"test/all/recall@20" in blob     # the summary: metrics.json flattened
    assert list(run.glob("files/media/table/test_slices_*.table.json"))
    # the run directory is the primary copy, written as without W&B
    for name in ("config.yaml", "metrics.json", "best.pt", "last.pt"):
        assert (tmp_path / "run" / name).is_file()
    assert metrics["test"]["all"]["recall@20"] >= 0


def test_run_train_no_wandb_writes_no_wandb_files(tmp_path):
    data = make_prepared(tmp_path / "data", n_users=50, n_items=60, n_interactions=1000)
    cfg = load_train_config(None, [f"data.dir={data}", *SMALL])
    run_train(cfg, tmp_path / "run", logger=make_logger(False))
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert not [p for p in tmp_path.rglob("*") if "wandb" in p.name]


def test_compare_is_a_wandb_run_with_table_and_plot(tmp_path, monkeypatch, read_record):
    monkeypatch.setenv("WANDB_MODE", "offline")
    from mrs.train.compare import run_compare

    data = make_prepared(tmp_path / "data", n_users=50, n_items=60, n_interactions=1000)
    cfg = tmp_path / "cmp.yaml"
    cfg.write_text(f"data: {{dir: {data}}}\nvariants:\n  - {{name: mf, set: {{model.encoder: mf}}}}\n")
    run_compare(cfg, tmp_path / "cmp", overrides=SMALL)
    (run,) = (tmp_path / "cmp" / "wandb").glob("offline-run-*")   # the comparison's own run
    read_record(run)
    assert list(run.glob("files/media/table/compare_*.table.json"))
    assert list(run.glob("files/media/images/tail_head_*.png"))
    assert list((tmp_path / "cmp" / "runs" / "mf" / "wandb").glob("offline-run-*"))  # and each variant's
    # --no-wandb: the same comparison leaves no W&B files anywhere
    run_compare(cfg, tmp_path / "cmp2", overrides=SMALL, wandb=False)
    assert not [p for p in (tmp_path / "cmp2").rglob("*") if "wandb" in p.name]
