"""Serving sequential user encoders (sasrec, bert4rec): the exported user rows are the model's own
states after each user's all-splits history, a raw-id history gives the same state, and the
state takes the user row's place in the CP query for every retrieval mode."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from mrs.serve.api import create_app
from mrs.serve.export import FACTORS, MANIFEST, export_run
from mrs.serve.service import RecommendService

L = 6  # seq_len: shorter than every synthetic user's history, so the export must keep the tail


@pytest.fixture(scope="module", params=[("sasrec", "none"), ("bert4rec", "early")])
def seq_served(request, tmp_path_factory):
    """``(data_dir, run_dir, model_dir, trained model, dataset)`` of a tiny sequential run."""
    from mrs.synth import make_prepared
    from mrs.train.config import load_train_config
    from mrs.train.trainer import Trainer, run_train
    from tests.train.conftest import tiny_overrides

    kind, fusion = request.param
    root = tmp_path_factory.mktemp(kind)
    data = make_prepared(root / "ds", n_users=40, n_items=60, n_interactions=800, seed=3,
                         modes=True, features_dim=8)
    feats = "[text-synth, image-synth]" if fusion != "none" else "[]"
    cfg = load_train_config(None, tiny_overrides(
        data, model__encoder="mf", model__user_encoder=kind, model__fusion=fusion, model__dim=16,
        model__seq_len=L, model__seq_blocks=1, model__seq_dropout=0.3, data__features=feats,
        train__epochs=2, eval__bootstrap=0, wandb__enabled="false"))
    run_train(cfg, root / "run")
    export_run(root / "run", root / "model")
    tr = Trainer.build(load_train_config(root / "run" / "config.yaml"), device=torch.device("cpu"))
    tr.model.load_state_dict(torch.load(root / "run" / "best.pt", weights_only=True)["model"])
    return data, root / "run", root / "model", tr.model.eval(), tr.ds


def _all_split_history(ds) -> tuple[torch.Tensor, list[list[str]]]:
    """Each user's items over all splits by (ts, file row), computed here with pandas: the last L
    as a left-padded ``(U, L)`` tensor, and the whole list as raw ids."""
    inter = ds.interactions.reset_index(drop=True)
    inter = inter.assign(row=np.arange(len(inter))).sort_values(["user", "ts", "row"], kind="stable")
    ids = ds.items.sort_values("item")["item_id"].astype(str).to_numpy()
    hist = torch.full((ds.n_users, L), ds.n_items, dtype=torch.long)
    raw = []
    for u in range(ds.n_users):
        items = inter.loc[inter["user"] == u, "item"].to_numpy()
        tail = items[-L:]
        hist[u, L - len(tail):] = torch.from_numpy(tail.copy())
        raw.append(list(ids[items]))
    return hist, raw


def _ids(r: dict) -> list[str]:
    return [x["id"] for x in r["items"]]


def test_user_rows_are_the_models_states_and_rank_as_the_model(seq_served):
    data, run, model_dir, model, ds = seq_served
    man = json.loads((model_dir / MANIFEST).read_text())
    seq = man["sequential"]
    assert {k: seq[k] for k in ("kind", "seq_len", "blocks", "heads", "dim", "dropout")} == {
        "kind": model.user_encoder.__class__.__name__.replace("UserEncoder", "").lower(),
        "seq_len": L, "blocks": 1, "heads": 2, "dim": 16, "dropout": 0.3}
    assert seq["users_without_history"] == 0
    svc = RecommendService.open(model_dir, retrieval="exact")
    hist, raw = _all_split_history(ds)
    model.user_encoder.set_history(hist)
    ctx, month = ds.meta["modes"]["context"]["labels"], ds.meta["modes"]["time"]["labels"]
    uids = ds.users.sort_values("user")["user_id"].astype(str).tolist()
    ids = ds.items.sort_values("item")["item_id"].astype(str).to_numpy()
    users = np.arange(0, ds.n_users, 5)
    for c, t in [(0, 0), (1, 7)]:
        with torch.no_grad():
            scores = model.full_sort_predict(torch.as_tensor(users), torch.tensor([[c, t]]).repeat(len(users), 1))
        want = torch.topk(scores, 10, dim=1).indices.numpy()
        assert len({tuple(w) for w in want}) > len(users) // 2  # the lists depend on the history
        labels = {"context": str(ctx[c]), "time": str(month[t])}
        for row, u in enumerate(users):
            by_user = svc.recommend(uids[u], labels, k=10)
            assert _ids(by_user) == list(ids[want[row]])  # (a) the model's own full ranking
            by_hist = svc.recommend(None, labels, k=10, history=raw[u])
            assert _ids(by_hist) == _ids(by_user)  # (b) the same history gives the same list
            assert by_hist["history_unknown"] == 0 and by_hist["history_known"] == len(raw[u])
            np.testing.assert_allclose([x["score"] for x in by_hist["items"]],
                                       [x["score"] for x in by_user["items"]], rtol=1e-5, atol=1e-6)
    # exclude_seen with a history drops exactly the history's items from the model's ranking
    u = int(users[1])
    with torch.no_grad():
        s = model.full_sort_predict(torch.tensor([u]), torch.tensor([[1, 7]]))[0]
    r = svc.recommend("someone", {"context": str(ctx[1]), "time": str(month[7])}, k=8,
                      exclude_seen=True, history=raw[u])
    order = [ids[i] for i in torch.argsort(s, descending=True).tolist() if ids[i] not in set(raw[u])][:8]
    assert _ids(r) == order and r["user"] == "someone"  # history wins over the user field


def test_unknown_ids_are_counted_and_an_empty_history_gets_the_no_history_state(seq_served):
    data, run, model_dir, model, ds = seq_served
    svc = RecommendService.open(model_dir, retrieval="exact")
    _, raw = _all_split_history(ds)
    h = raw[5]
    clean = svc.recommend(None, k=10, history=h)
    noisy = svc.recommend(None, k=10, history=["nope-1", *h[:2], "nope-2", *h[2:]])
    assert noisy["history_unknown"] == 2 and noisy["history_known"] == len(h)
    assert _ids(noisy) == _ids(clean)
    # no known item: the learned no-history state (an all-padding sequence), as in training
    pad = torch.full((1, L), ds.n_items, dtype=torch.long)
    with torch.no_grad():
        emb = model.encode()
        state = model.user_encoder.history_rows(pad, emb[1])
        q = model.scorer.query(state, torch.zeros(1, 2, dtype=torch.long),
                               [torch.tensor(m["train_counts"], dtype=torch.float32) / sum(m["train_counts"])
                                for m in svc.model.manifest["modes"]])
        want = torch.topk(model.scorer.rank_all(q, emb[1]), 10).indices[0].numpy()
    ids = ds.items.sort_values("item")["item_id"].astype(str).to_numpy()
    empty = svc.recommend(None, k=10, history=[])
    only_unknown = svc.recommend(None, k=10, history=["nope"])
    assert empty["history_known"] == 0 and only_unknown["history_unknown"] == 1
    assert _ids(empty) == _ids(only_unknown) == list(ids[want])
    assert _ids(empty) != _ids(clean)  # the history matters


def test_ann_modes_use_the_history_state(seq_served):
    from mrs.serve.index import AnnIndex, IndexSpec

    data, run, model_dir, model, ds = seq_served
    exact = RecommendService.open(model_dir, retrieval="exact")
    m = exact.model
    index = AnnIndex.load_or_build(model_dir.parent / "index", m.item.numpy(), IndexSpec())
    # two-stage with every item as a candidate: the exact CP rerank of the whole catalogue
    two = RecommendService(m, index, "two_stage", candidates=m.n_items)
    _, raw = _all_split_history(ds)
    labels = {"context": m.mode_labels["context"][1]}
    for h in (raw[2], raw[9][:3], []):
        want = exact.recommend(None, labels, k=10, history=h, exclude_seen=True)
        got = two.recommend(None, labels, k=10, history=h, exclude_seen=True)
        assert _ids(got) == _ids(want) and got["retrieval"] == "two_stage"
        folded = two.recommend(None, labels, k=10, history=h, retrieval="folded")
        assert folded["retrieval"] == "folded" and len(folded["items"]) == 10


def test_an_added_item_is_a_history_token(seq_served):
    data, run, model_dir, model, ds = seq_served
    svc = RecommendService.open(model_dir, retrieval="exact")
    if not svc.model.content:
        pytest.skip("this variant has no content projection")
    spec = svc.model.manifest["content"]["modalities"]
    feats = {s["name"]: np.random.default_rng(0).normal(size=s["dim"]).tolist() for s in spec}
    svc.add_item("brand-new", feats)
    _, raw = _all_split_history(ds)
    base = svc.recommend(None, k=10, history=raw[1])
    added = svc.recommend(None, k=10, history=raw[1] + ["brand-new"])
    assert added["history_unknown"] == 0 and added["history_known"] == len(raw[1]) + 1
    assert [x["score"] for x in added["items"]] != [x["score"] for x in base["items"]]
    excl = svc.recommend(None, k=svc.model.n_items - 20, history=["brand-new"], exclude_seen=True)
    assert "brand-new" not in _ids(excl)


def test_http_history_and_a_copied_model_dir_without_the_dataset(seq_served, served, tmp_path):
    data, run, model_dir, model, ds = seq_served
    copy = tmp_path / "elsewhere"
    shutil.copytree(model_dir, copy)
    assert any(k.startswith("seq.") for k in _safetensor_keys(copy / FACTORS))
    hidden = data.with_name(data.name + "-hidden")
    data.rename(hidden)  # (e) serving reads no dataset directory
    try:
        svc = RecommendService.open(copy, retrieval="folded")
        client = TestClient(create_app(svc))
        first = svc.model.user_ids[0]
        by_user = client.post("/recommend", json={"user": first, "k": 5, "retrieval": "exact"}).json()
        hist = [svc.model.item_ids[j] for j in (3, 7, 11)]
        r = client.post("/recommend", json={"history": ["unknown-x", *hist], "context":
                                            svc.model.mode_labels["context"][0], "k": 5, "exclude_seen": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["history_unknown"] == 1 and len(body["items"]) == 5
        assert not set(hist) & set(_ids(body)) and len(by_user["items"]) == 5
        assert client.get("/health").json()["sequential"] is True
    finally:
        hidden.rename(data)
    # (d) a non-sequential model still refuses a history, naming the field
    plain = TestClient(create_app(RecommendService.open(served[2], retrieval="exact")))
    r = plain.post("/recommend", json={"history": ["a", "b"], "k": 3})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "history"]


def _safetensor_keys(path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return list(f.keys())


@pytest.mark.parametrize("seq_served", [("sasrec", "none")], indirect=True)
def test_loopback_server_answers_concurrent_history_requests(seq_served):
    """A real uvicorn server, 4 client threads: every history request (run in the worker pool,
    the transformer called from several threads at once) gets the same list as the service."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.serve.conftest import loopback_server

    data, run, model_dir, model, ds = seq_served
    svc = RecommendService.open(model_dir, retrieval="exact")
    _, raw = _all_split_history(ds)
    want = [_ids(svc.recommend(None, k=8, history=raw[u])) for u in range(ds.n_users)]
    with loopback_server(create_app(svc)) as url:
        local = threading.local()

        def work(j: int) -> tuple[int, list[str]]:
            if not hasattr(local, "client"):  # one keep-alive connection per client thread
                local.client = httpx.Client(base_url=url, timeout=30)
            r = local.client.post("/recommend", json={"history": raw[j % ds.n_users], "k": 8})
            return r.status_code, _ids(r.json()) if r.status_code == 200 else []

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(work, range(ds.n_users)))
        for j, (status, items) in enumerate(results):
            assert status == 200 and items == want[j % ds.n_users], j
        batch = httpx.post(f"{url}/recommend/batch", timeout=30, json={
            "requests": [{"history": raw[0], "k": 8}, {"user": svc.model.user_ids[1], "k": 8}]}).json()
        assert _ids(batch["results"][0]) == want[0]


@pytest.mark.parametrize("seq_served", [("bert4rec", "early")], indirect=True)
def test_cli_recommend_with_a_history(seq_served, capsys):
    from mrs.cli import main

    data, run, model_dir, model, ds = seq_served
    svc = RecommendService.open(model_dir, retrieval="exact")
    _, raw = _all_split_history(ds)
    capsys.readouterr()
    assert main(["recommend", "--model", str(model_dir), "--retrieval", "exact", "-k", "4",
                 "--history", ",".join(["nope", *raw[4]])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "history: %d known, 1 unknown ids" % len(raw[4]) in lines[0]
    assert [ln.split()[1] for ln in lines[1:]] == _ids(svc.recommend(None, k=4, history=raw[4]))


def test_restrict_explore_and_broken_sequential_weights(seq_served):
    from safetensors.numpy import load_file

    from mrs.errors import MrsError
    from mrs.serve.sequential import HistoryEncoder

    data, run, model_dir, model, ds = seq_served
    svc = RecommendService.open(model_dir, retrieval="exact")
    _, raw = _all_split_history(ds)
    full = _ids(svc.recommend(None, k=svc.model.n_items, history=raw[3]))
    sub = full[::7]  # restrict ranks exactly over the subset: the full ranking's order, filtered
    assert _ids(svc.recommend(None, k=len(sub), history=raw[3], restrict=sub[::-1])) == sub
    r = svc.recommend(None, k=5, history=raw[3], explore="ucb", explore_strength=0.0)
    assert r["explore"]["kind"] == "ucb" and _ids(r) == full[:5]  # β = 0: no bonus
    tensors = load_file(str(model_dir / FACTORS))
    del tensors["seq.pos.weight"]
    with pytest.raises(MrsError, match="missing tensor 'seq.pos.weight'"):
        HistoryEncoder(svc.model.manifest["sequential"], tensors, len(svc.model.item_ids))
