"""Export -> load -> exact scoring equals the trained model's own full ranking."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mrs.errors import MrsError
from mrs.serve.export import FACTORS, MANIFEST, export_run
from mrs.serve.service import RecommendService


def _trained_model(run_dir):
    from mrs.train.config import load_train_config
    from mrs.train.trainer import Trainer

    tr = Trainer.build(load_train_config(run_dir / "config.yaml"), device=torch.device("cpu"))
    tr.model.load_state_dict(torch.load(run_dir / "best.pt", weights_only=True)["model"])
    return tr.model.eval(), tr.ds


def test_exact_serving_equals_the_models_full_ranking(served):
    data, run, model_dir = served
    model, ds = _trained_model(run)
    svc = RecommendService.open(model_dir, retrieval="exact")
    ctx_labels = ds.meta["modes"]["context"]["labels"]
    month_labels = ds.meta["modes"]["time"]["labels"]
    users = np.arange(ds.n_users)
    uids = ds.users.sort_values("user")["user_id"].tolist()
    with torch.no_grad():
        emb = model.encode()
        for c, t in [(0, 0), (1, 5), (0, 11)]:
            modes = torch.tensor([[c, t]]).repeat(len(users), 1)
            scores = model.full_sort_predict(torch.as_tensor(users), modes, emb=emb)  # (U, I)
            want = torch.topk(scores, 20, dim=1).indices.numpy()
            got = svc.recommend_batch(uids, {"context": ctx_labels[c], "time": month_labels[t]}, k=20)
            ids = ds.items.sort_values("item")["item_id"].to_numpy()
            for u in users:
                assert [x["id"] for x in got[u]["items"]] == list(ids[want[u]])
                assert got[u]["modes"] == {"context": ctx_labels[c], "time": month_labels[t]}
            # exclude_seen: the same ranking with every item the user has removed
            inter = ds.interactions
            for u in users[:20]:
                seen = set(inter.loc[inter["user"] == u, "item"])
                order = [i for i in torch.argsort(scores[u], descending=True).tolist() if i not in seen][:12]
                r = svc.recommend(uids[u], {"context": ctx_labels[c], "time": month_labels[t]}, k=12,
                                  exclude_seen=True)
                assert [x["id"] for x in r["items"]] == list(ids[order])


def test_model_dir_is_self_contained_and_checksummed(served, tmp_path):
    import shutil

    data, run, model_dir = served
    copy = tmp_path / "elsewhere"
    shutil.copytree(model_dir, copy)
    man = json.loads((copy / MANIFEST).read_text())
    assert man["source"]["config"]["model"]["encoder"] == "lightgcn"
    assert set(man["files"]) == {FACTORS, "user_ids.txt", "item_ids.txt"}
    assert not list(copy.glob("*.pt")) and not list(copy.glob("*.pkl"))
    # serving the copy reads no dataset directory: works with the dataset renamed away
    hidden = data.with_name(data.name + "-hidden")
    data.rename(hidden)
    try:
        svc = RecommendService.open(copy, retrieval="exact")
        assert len(svc.recommend(svc.model.user_ids[0], k=5)["items"]) == 5
    finally:
        hidden.rename(data)
    with open(copy / FACTORS, "r+b") as f:  # one flipped byte is caught
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(MrsError, match="sha256"):
        RecommendService.open(copy, retrieval="exact")


def test_export_refuses_to_overwrite_and_a_failing_export_leaves_nothing(served, tmp_path, monkeypatch):
    data, run, model_dir = served
    with pytest.raises(MrsError, match="already holds the output of an earlier `mrs export`; pass --force"):
        export_run(run, model_dir)
    import mrs.serve.export as ex

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ex, "write_json_atomic", boom)  # the manifest is written last
    with pytest.raises(RuntimeError):
        export_run(run, tmp_path / "m")
    assert not (tmp_path / "m").exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_killed_export_leaves_no_model_dir(served, tmp_path):
    """SIGKILL while the files are being written: the final directory never appears."""
    data, run, model_dir = served
    out = tmp_path / "killed"
    code = f"""
import time, mrs.serve.export as ex
orig = ex.write_model_dir
def slow(path, *a, **k):
    orig(path, *a, **k)
    open({str(tmp_path / 'ready')!r}, 'w').close()
    time.sleep(60)
ex.write_model_dir = slow
ex.export_run({str(run)!r}, {str(out)!r})
"""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "ready").exists():
            assert p.poll() is None and time.time() < deadline, "export did not reach the write"
            time.sleep(0.1)
        assert any(x.name.startswith(".killed.tmp-") for x in tmp_path.iterdir())
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    assert not out.exists()


@pytest.mark.parametrize("encoder,fusion", [("mf", "none"), ("freedom", "late")])
def test_exact_serving_equals_full_ranking_for_other_encoders(tmp_path, encoder, fusion):
    """MF hands out its parameters (no propagation); late fusion's score scale is folded into the
    exported user rows; FREEDOM adds the item-item graph. Served lists stay identical."""
    from mrs.synth import make_prepared
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train
    from tests.train.conftest import tiny_overrides

    data = make_prepared(tmp_path / "ds", n_users=60, n_items=80, n_interactions=1500, seed=0,
                         modes=True, features_dim=8)
    feats = "[text-synth, image-synth]" if fusion != "none" else "[]"
    cfg = load_train_config(None, tiny_overrides(data, model__encoder=encoder, model__fusion=fusion,
                                                 data__features=feats, eval__bootstrap=0,
                                                 wandb__enabled="false"))
    run_train(cfg, tmp_path / "run")
    export_run(tmp_path / "run", tmp_path / "model")
    model, ds = _trained_model(tmp_path / "run")
    svc = RecommendService.open(tmp_path / "model", retrieval="exact")
    labels = {"context": ds.meta["modes"]["context"]["labels"][1], "time": ds.meta["modes"]["time"]["labels"][7]}
    with torch.no_grad():
        scores = model.full_sort_predict(torch.arange(ds.n_users), torch.tensor([[1, 7]]).repeat(ds.n_users, 1))
    want = torch.topk(scores, 10, dim=1).indices.numpy()
    got = svc.rank(np.arange(ds.n_users), svc.model.resolve_modes(labels), 10).items
    np.testing.assert_array_equal(got, want)
