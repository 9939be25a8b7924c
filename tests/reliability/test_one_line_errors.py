"""Issue 13 §5: bad inputs that used to end in a traceback (or a late failure) now get a one-line
error, early, and leave nothing behind."""
from __future__ import annotations

import gzip
import json

import pytest

from mrs.cli import main
from tests.prep.test_amazon2023 import _review, _write
from tests.train.conftest import tiny_overrides


def _sets(overrides: list[str]) -> list[str]:
    return sum((["--set", o] for o in overrides), [])


# ----------------------------------------------------------------------------- gzip
def test_truncated_and_non_gzip_inputs(tmp_path, cli_error):
    lines = "".join(_review(f"u{k}", f"A{k % 5}", k) + "\n" for k in range(3000)).encode()
    (tmp_path / "trunc.jsonl.gz").write_bytes(gzip.compress(lines)[:4000])
    (tmp_path / "plain.jsonl.gz").write_bytes(lines)
    csv = ("user_id,parent_asin,rating,timestamp\n" + "".join(f"u{k},A{k % 5},5,{1704067200000 + k}\n"
                                                              for k in range(3000))).encode()
    (tmp_path / "trunc.csv.gz").write_bytes(gzip.compress(csv)[:3000])
    (tmp_path / "plain.csv.gz").write_bytes(csv)
    for name in ("trunc.jsonl.gz", "plain.jsonl.gz", "trunc.csv.gz", "plain.csv.gz"):
        rc, err = cli_error(["prepare", "amazon2023", "--reviews", str(tmp_path / name),
                             "--out", str(tmp_path / f"out-{name}")])
        assert f"{name}: truncated or not a gzip file" in err, err
        assert not (tmp_path / f"out-{name}").exists()
    good = _write(tmp_path / "r.jsonl", [_review(f"u{k}", "A1", k) for k in range(5)])
    (tmp_path / "meta.jsonl.gz").write_bytes(b"not gzip at all\n")
    rc, err = cli_error(["prepare", "amazon2023", "--reviews", str(good), "--meta",
                         str(tmp_path / "meta.jsonl.gz"), "--out", str(tmp_path / "m")])
    assert "meta.jsonl.gz: truncated or not a gzip file" in err


def test_missing_meta_is_reported_before_the_reviews_are_read(tmp_path, monkeypatch, cli_error):
    import mrs.prep.amazon2023 as a23

    rev = _write(tmp_path / "r.jsonl", [_review(f"u{k}", "A1", k) for k in range(5)])
    monkeypatch.setattr(a23, "read_reviews_jsonl", lambda *a, **k: pytest.fail("reviews read first"))
    rc, err = cli_error(["prepare", "amazon2023", "--reviews", str(rev), "--meta",
                         str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "d")])
    assert "amazon2023 --meta: file not found" in err


def test_negative_kcore_and_test_days_are_refused(tmp_path, cli_error):
    rev = _write(tmp_path / "r.jsonl", [_review(f"u{k}", "A1", k) for k in range(5)])
    rc, err = cli_error(["prepare", "amazon2023", "--reviews", str(rev), "--out", str(tmp_path / "d"),
                         "--set", "test_days=-30"])
    assert "config key 'test_days' must be >= 0, got -30" in err
    rc, err = cli_error(["prepare", "amazon2023", "--reviews", str(rev), "--out", str(tmp_path / "d"),
                         "--kcore", "-5"])
    assert "config key 'kcore' must be >= 0, got -5" in err


# ----------------------------------------------------------------------------- training config
@pytest.mark.parametrize("key,value,words", [
    ("train.lr", -0.01, "config key 'train.lr' must be a positive number, got -0.01"),
    ("train.batch_size", 0, "config key 'train.batch_size' must be >= 1, got 0"),
    ("model.reg", -1e-4, "config key 'model.reg' must be >= 0, got -0.0001"),
    ("train.epochs", 0, "config key 'train.epochs' must be >= 1, got 0"),
])
def test_bad_training_values_fail_before_a_run_dir_exists(tiny_data, tmp_path, cli_error, key, value, words):
    out = tmp_path / "run"
    rc, err = cli_error(["train", "--out", str(out), "--no-wandb",
                         *_sets(tiny_overrides(tiny_data)), "--set", f"{key}={value}"])
    assert words in err
    assert not out.exists()


# ----------------------------------------------------------------------------- LMDB stores
def test_garbage_lmdb_store_in_features_list_and_train(tiny_data, tmp_path, cli_error, capsys):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(tiny_data, ds)
    store = ds / "features" / "text-junk.lmdb"
    store.mkdir()
    (store / "data.mdb").write_bytes(b"\x00garbage" * 4096)
    assert main(["features", "list", "--dataset", str(ds)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    junk = [r for r in rows if r["name"] == "text-junk"][0]
    assert "text-junk.lmdb: not a readable LMDB feature store (InvalidError" in junk["error"]
    out = tmp_path / "run"
    rc, err = cli_error(["train", "--out", str(out), "--no-wandb",
                         *_sets(tiny_overrides(ds, data__features="[text-junk]"))])
    assert "text-junk.lmdb: not a readable LMDB feature store" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- sweep metric
def _spec(tmp_path, metric: str):
    p = tmp_path / "s.yaml"
    p.write_text(f"method: grid\nmetric: {{name: {metric}, goal: maximize}}\n"
                 "parameters:\n  train.seed: {values: [1, 2]}\n")
    return p


def test_sweep_metric_name_is_checked_before_the_first_trial(tiny_data, tmp_path, cli_error, monkeypatch):
    import mrs.train.trainer as trainer

    monkeypatch.setattr(trainer, "run_train", lambda *a, **k: pytest.fail("a trial ran"))
    sets = _sets(tiny_overrides(tiny_data))
    rc, err = cli_error(["sweep", str(_spec(tmp_path, "valid/all/recal@20")), "--no-wandb",
                         "--out", str(tmp_path / "s1"), *sets])
    assert "'recal' is not in eval.metrics" in err
    rc, err = cli_error(["sweep", str(_spec(tmp_path, "recall@20")), "--no-wandb",
                         "--out", str(tmp_path / "s2"), *sets])
    assert "not a metric the trials report; use valid/<metric>@<k>" in err


def test_sweep_accepts_the_dotted_spelling(tiny_data, tmp_path, capsys):
    sets = _sets(tiny_overrides(tiny_data, eval__bootstrap=0))
    assert main(["sweep", str(_spec(tmp_path, "valid.all.recall@20")), "--no-wandb",
                 "--out", str(tmp_path / "s"), *sets]) == 0
    state = json.loads((tmp_path / "s" / "state.json").read_text())
    assert all(t["status"] == "finished" for t in state["trials"].values())
    assert "valid/all/recall@20=" in capsys.readouterr().out
