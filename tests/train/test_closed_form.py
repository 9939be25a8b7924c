"""Closed-form models through `mrs train`: one fit, then the gradient models' evaluation path."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from mrs.errors import MrsError
from mrs.models.base import CLOSED_FORM
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train
from tests.train.conftest import tiny_overrides
from tests.train.seqdata import make_sequential


@pytest.mark.parametrize("encoder", CLOSED_FORM.names())
def test_every_closed_form_model_trains_end_to_end(tiny_data, tmp_path, encoder):
    cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder=encoder, train__epochs=50,
                                                 train__final_fit="train+valid", wandb__enabled=False))
    m = run_train(cfg, tmp_path / "run")
    assert m["best_epoch"] == 1 and m["epochs_run"] == 1 and len(m["history"]) == 1  # one fit, no epochs
    assert m["history"][0]["fit_s"] >= 0 and "loss" not in m["history"][0]
    assert m["final_fit"] == "train+valid"
    assert set(m["test"]) == {"all", "tail", "head", "cold"}
    assert set(m["by_query"]) == {"user_mode", "user"}              # both query kinds
    test = m["test"]["all"]
    assert 0 < test["recall@5"] <= test["recall@20"] <= 1
    frame = pd.read_parquet(tmp_path / "run" / "per_query.parquet")
    assert set(frame.query_kind) == {"user_mode", "user"} and set(frame.split) == {"valid", "test"}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"] == m["test"]


def test_the_cli_trains_ease_and_a_resume_refits(tiny_data, tmp_path):
    args = [sys.executable, "-m", "mrs", "train", "--no-wandb", "--out", str(tmp_path / "run"),
            *sum((["--set", s] for s in tiny_overrides(tiny_data, model__encoder="ease",
                                                         model__options__ease__lam=50)), [])]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "best epoch 1; test: all recall@20=" in r.stdout
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # a resumed finished run has no fitted matrices in its checkpoint: it refits, same figures
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again["test"] == first["test"] and again["valid"] == first["valid"]


def test_pop_by_context_and_time_beats_global_pop_on_contextual_queries(tiny_data, tmp_path):
    """The planted data's items depend on context and time: counting within the query's
    (context, time) must do better than the global counts on the very same queries."""
    out = {}
    for name, by in (("global", "[]"), ("by", "[context,time]")):
        cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder="pop", eval__bootstrap=0,
                                                     model__options__pop__by=by, wandb__enabled=False))
        out[name] = run_train(cfg, tmp_path / name)["by_query"]["user_mode"]["test"]["all"]["recall@20"]
    assert out["by"] > out["global"], out


@pytest.mark.parametrize("encoder", ["itemknn", "ease"])
def test_users_without_train_rows_get_popularity_and_the_cold_user_slice(tmp_path, encoder):
    d = make_sequential(tmp_path / "ds", n_users=60, n_items=30, one_item_users=6)
    cfg = load_train_config(None, [f"data.dir={d}", f"model.encoder={encoder}", "train.device=cpu",
                                   "eval.bootstrap=0", "eval.ks=[10]", "train.select_metric=recall@10",
                                   "wandb.enabled=false"])
    m = run_train(cfg, tmp_path / "run")
    n = m["n_queries"]["test"]
    assert n["cold_user"] == 6
    assert n["all"] + n["cold_user"] + m["eval_info"]["test"]["n_dropped_queries"] == 60
    assert m["test"]["cold_user"]["recall@10"] is not None


@pytest.mark.parametrize("override,key", [
    ("train.negatives=dynamic", "train.negatives"),
    ("model.fusion=concat", "model.fusion"),
    ("model.user_encoder=sasrec", "model.user_encoder"),
    ("model.loss=ce", "model.loss"),
    ("model.options.itemknn.k=0", "model.options.itemknn.k"),
    ("model.options.rp3beta.beta=-1", "model.options.rp3beta.beta"),
])
def test_bad_closed_form_configs_fail_with_the_key(tiny_data, override, key):
    enc = key.split(".")[2] if key.startswith("model.options.") else "itemknn"
    with pytest.raises(MrsError, match=key.replace(".", r"\.")) as e:
        cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder=enc) + [override])
        from mrs.train.trainer import Trainer
        Trainer.build(cfg)
    assert "\n" not in str(e.value)


def test_bad_data_options_leave_no_run_dir(tiny_data, tmp_path):
    cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder="pop",
                                                 model__options__pop__by="[season]"))
    with pytest.raises(MrsError, match=r"'model\.options\.pop\.by': 'season' is not a mode of this dataset"):
        run_train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    cfg = load_train_config(None, tiny_overrides(tiny_data, model__encoder="ease",
                                                 model__options__ease__max_memory_mb=0.01))
    with pytest.raises(MrsError, match=r"'model\.options\.ease\.max_memory_mb': EASE's dense 80 x 80"):
        run_train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_compare_runs_closed_form_variants(tiny_data, tmp_path):
    import yaml

    from mrs.train.compare import run_compare

    spec = {"data": {"dir": str(tiny_data)}, "baseline": "pop",
            "train": {"device": "cpu"}, "eval": {"bootstrap": 20, "ks": [5, 20]},
            "variants": [{"name": "pop", "set": {"model.encoder": "pop"}},
                         {"name": "ease", "set": {"model.encoder": "ease", "model.options.ease.lam": 20}}]}
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(spec))
    table = run_compare(path, tmp_path / "cmp", wandb=False)
    assert "ease" in table and "pop" in table
    assert (tmp_path / "cmp" / "runs" / "ease" / "metrics.json").is_file()


def test_export_serves_global_pop_and_refuses_item_item_models(tiny_data, tmp_path):
    import numpy as np

    from mrs.data.prepared import load_prepared
    from mrs.serve.export import export_run

    def train(name, *sets):
        out = tmp_path / name
        run_train(load_train_config(None, tiny_overrides(tiny_data, eval__bootstrap=0, wandb__enabled=False,
                                                         **dict(sets))), out)
        return out

    pop = train("pop", ("model__encoder", "pop"))
    args = [sys.executable, "-m", "mrs"]
    r = subprocess.run(args + ["export", str(pop), "--out", str(tmp_path / "pop_model")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ds = load_prepared(tiny_data)
    user = str(ds.users.set_index("user").loc[0, "user_id"])
    r = subprocess.run(args + ["recommend", "--model", str(tmp_path / "pop_model"), "--retrieval", "exact",
                               "--user", user, "-k", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "retrieval: exact" in r.stdout  # the user's own (rank-one) factors, not the fallback
    top = ds.items.set_index("item").loc[np.argsort(-ds.item_train_counts(), kind="stable")[:3], "item_id"]
    assert [line.split()[1] for line in r.stdout.splitlines()[-3:]] == [str(x) for x in top]
    ease = train("ease", ("model__encoder", "ease"))
    r = subprocess.run(args + ["export", str(ease), "--out", str(tmp_path / "ease_model")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "config key 'model.encoder'" in r.stderr and "'ease'" in r.stderr
    assert not (tmp_path / "ease_model").exists()
    with pytest.raises(MrsError, match="'pop' without 'by'"):
        export_run(train("popby", ("model__encoder", "pop"), ("model__options__pop__by", "[context]")),
                   tmp_path / "popby_model")
