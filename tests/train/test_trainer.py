"""Resume equivalence, NaN stop, run-dir safety, config errors and the metrics.json layout."""
from __future__ import annotations

import json

import pytest
import torch

from mrs.cli import main as mrs_main
from mrs.errors import MrsError
from mrs.train import trainer as trainer_mod
from mrs.train.checkpoint import BEST, LAST
from mrs.train.config import load_train_config
from mrs.train.trainer import evaluate_checkpoint, run_train
from tests.train.conftest import tiny_overrides

# FREEDOM (edge resampling from the trainer's generator) + dynamic softmax negatives (the
# sampler's generator) + CP modes: every source of randomness a resume has to restore.
HARD = dict(model__encoder="freedom", model__modes=True, model__fusion="early",
            data__features="[text-synth, image-synth]", train__negatives="dynamic",
            train__hard="softmax", train__n_candidates=4, train__epochs=4, train__patience=0)


def _strip_times(m: dict) -> dict:
    m = json.loads(json.dumps(m))
    for h in m["history"]:
        h.pop("time_s")
    for k in ("train_time_s", "eval_info"):
        m.pop(k)
    return m


def test_resume_continues_to_the_same_result(tiny_data, tmp_path, monkeypatch):
    cfg = load_train_config(None, tiny_overrides(tiny_data, **HARD))
    full = run_train(cfg, tmp_path / "full")

    original = trainer_mod.Trainer.train_epoch

    def killed_at_epoch_3(self, epoch):
        if epoch == 2:  # two epochs done and checkpointed: simulate Ctrl-C / a killed job
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", killed_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, tmp_path / "cut")
    assert not (tmp_path / "cut" / "metrics.json").exists()
    assert torch.load(tmp_path / "cut" / LAST, weights_only=False)["state"]["epoch"] == 2
    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", original)
    resumed = run_train(cfg, tmp_path / "cut", resume=True)

    assert _strip_times(resumed) == _strip_times(full)
    a = torch.load(tmp_path / "full" / LAST, weights_only=False)["model"]
    b = torch.load(tmp_path / "cut" / LAST, weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_result_other_seed_differs(tiny_data, tmp_path):
    runs = [run_train(load_train_config(None, tiny_overrides(tiny_data, train__seed=s)), tmp_path / f"r{i}")
            for i, s in enumerate((1, 1, 2))]
    assert runs[0]["history"][0]["loss"] == runs[1]["history"][0]["loss"]
    assert runs[0]["history"][0]["loss"] != runs[2]["history"][0]["loss"]


def test_inf_loss_stops_clearly_and_keeps_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    from mrs.models.model import CPRecommender

    cfg = load_train_config(None, tiny_overrides(tiny_data, train__epochs=3))
    original = CPRecommender.calculate_loss
    calls = {"n": 0, "per_epoch": None}

    def poisoned(self, batch, emb=None):
        loss, parts = original(self, batch, emb)
        calls["n"] += 1
        if calls["n"] > calls["per_epoch"]:  # first batch of epoch 2
            loss = loss * float("inf")
        return loss, parts

    from mrs.data.prepared import load_prepared

    calls["per_epoch"] = -(-len(load_prepared(tiny_data).split("train")) // 256)  # batches/epoch
    monkeypatch.setattr(CPRecommender, "calculate_loss", poisoned)
    with pytest.raises(MrsError, match=r"loss is inf at epoch 2, batch 1/.*last good checkpoint \(epoch 1\)"):
        run_train(cfg, tmp_path / "run")
    ck = torch.load(tmp_path / "run" / LAST, weights_only=False)
    assert ck["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert (tmp_path / "run" / BEST).is_file() and not (tmp_path / "run" / "metrics.json").exists()


def test_huge_lr_diverges_to_a_clear_error(tiny_data, tmp_path):
    cfg = load_train_config(None, tiny_overrides(tiny_data, train__lr=1e30, train__epochs=5,
                                                 model__reg=1e30))
    with pytest.raises(MrsError, match="loss is (nan|inf)"):
        run_train(cfg, tmp_path / "run")


def test_run_dir_is_not_overwritten_or_resumed_with_another_config(tiny_data, tmp_path):
    cfg = load_train_config(None, tiny_overrides(tiny_data))
    run_train(cfg, tmp_path / "run")
    with pytest.raises(MrsError, match="--resume"):
        run_train(cfg, tmp_path / "run")
    other = load_train_config(None, tiny_overrides(tiny_data, train__lr=0.5))
    with pytest.raises(MrsError, match="train.lr: 0.01 -> 0.5"):
        run_train(other, tmp_path / "run", resume=True)


def test_unknown_config_key_is_an_error(tiny_data, tmp_path, capsys):
    with pytest.raises(MrsError, match="'train.epoch'"):
        load_train_config(None, ["train.epoch=3"])
    with pytest.raises(MrsError, match="'model.encoder'"):
        load_train_config(None, ["model.encoder=gcn"])
    rc = mrs_main(["train", "--set", f"data.dir={tiny_data}", "--set", "model.encodr=mf",
                   "--out", str(tmp_path / "x"), "--no-wandb"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "'model.encodr'" in err and len(err.splitlines()) == 1


def test_cli_writes_metrics_json_in_the_issue_layout(tiny_data, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  dir: {tiny_data}\nmodel:\n  encoder: lightgcn\n  dim: 8\n"
                   "train:\n  epochs: 2\n  batch_size: 256\n  device: cpu\neval:\n  bootstrap: 50\n")
    out = tmp_path / "run"
    assert mrs_main(["train", "--config", str(cfg), "--set", "model.modes=true",
                     "--set", "train.seed=7", "--out", str(out), "--no-wandb"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for split in ("test", "valid"):
        assert set(m[split]) == {"all", "tail", "head", "cold"}
        assert {"recall@20", "ndcg@20", "precision@20", "hit@20", "map@20"} <= set(m[split]["all"])
        lo, hi = m["ci"][split]["all"]["recall@20"]
        assert lo <= m[split]["all"]["recall@20"] <= hi
        assert m["n_queries"][split]["all"] >= m["n_queries"][split]["tail"]
    assert m["best_epoch"] in (1, 2) and [h["epoch"] for h in m["history"]] == [1, 2]
    assert m["valid"]["all"]["recall@20"] == pytest.approx(m["best_valid"])
    saved = load_train_config(out / "config.yaml")  # the full resolved config, reloadable
    assert saved.model.encoder == "lightgcn" and saved.model.modes and saved.train.seed == 7
    assert (out / BEST).is_file() and (out / LAST).is_file()
    again = evaluate_checkpoint(out, "test")  # the sweep's entry point: same weights, same numbers
    assert again["test"]["all"]["recall@20"] == pytest.approx(m["test"]["all"]["recall@20"])


def test_early_stopping_keeps_the_best_epoch(tiny_data, tmp_path, monkeypatch):
    values = iter([0.30, 0.50, 0.45, 0.40, 0.90, 0.95])  # best at epoch 2, then 2 worse evaluations
    monkeypatch.setattr(trainer_mod, "_select", lambda metrics, name: next(values))
    cfg = load_train_config(None, tiny_overrides(tiny_data, train__epochs=6, train__patience=2,
                                                 eval__bootstrap=0))
    m = run_train(cfg, tmp_path / "run")
    assert m["stopped_early"] and m["epochs_run"] == 4 and m["best_epoch"] == 2
    assert m["best_valid"] == 0.50
    assert torch.load(tmp_path / "run" / BEST, weights_only=True)["epoch"] == 2
    assert [h["valid/recall@20"] for h in m["history"]] == [0.30, 0.50, 0.45, 0.40]


def test_a_second_writer_is_refused(tiny_data, tmp_path):
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "w") as held:  # another live process training into the same dir
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(MrsError, match="another process is training into this run directory"):
            run_train(load_train_config(None, tiny_overrides(tiny_data)), run)
    run_train(load_train_config(None, tiny_overrides(tiny_data)), run)  # released: runs
    assert (run / "metrics.json").is_file()


def test_missing_dataset_leaves_no_run_directory(tmp_path):
    from mrs.errors import MrsError
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    cfg = load_train_config(None, [f"data.dir={tmp_path / 'nope'}"])
    with pytest.raises(MrsError, match="dataset.json"):
        run_train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
