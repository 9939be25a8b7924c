"""The HTTP API: every bad request gets its 4xx and the server keeps serving; a real loopback
server under concurrent requests (with an item added meanwhile) answers every request."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mrs.serve.api import create_app
from mrs.serve.service import RecommendService


def _loc(resp) -> list:
    return resp.json()["detail"][0]["loc"]


def test_recommend_returns_ids_scores_and_the_modes_used(client, service):
    m = service.model
    u = m.user_ids[3]
    r = client.post("/recommend", json={"user": u, "context": m.mode_labels["context"][0], "k": 12,
                                        "exclude_seen": True})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == u and len(body["items"]) == 12 and body["fallback"] is None
    assert body["modes"] == {"context": m.mode_labels["context"][0], "time": "*"}
    assert body["retrieval"] == "folded"
    # the same request through the service (the CLI's path) gives the same list
    same = service.recommend(u, {"context": m.mode_labels["context"][0]}, 12, True)
    assert body["items"] == same["items"]
    exact = client.post("/recommend", json={"user": u, "retrieval": "exact", "k": 5}).json()
    assert exact["retrieval"] == "exact" and len(exact["items"]) == 5
    pop = client.post("/recommend", json={"user": "stranger", "k": 3}).json()
    assert pop["fallback"] == "popular" and len(pop["items"]) == 3
    batch = client.post("/recommend/batch", json={"requests": [{"user": u}, {"user": "stranger", "k": 2}]})
    assert batch.status_code == 200
    res = batch.json()["results"]
    assert res[0]["items"] == client.post("/recommend", json={"user": u}).json()["items"]
    assert len(res[1]["items"]) == 2


@pytest.mark.parametrize("body,status,loc", [
    ({"user": "x", "k": 0}, 422, ["body", "k"]),
    ({"user": "x", "k": 10 ** 7}, 422, ["body", "k"]),
    ({"user": "x", "context": "moon"}, 422, ["body", "context"]),
    ({"user": "x", "time": "Smarch"}, 422, ["body", "time"]),
    ({"user": "x", "modes": {"weather": "rain"}}, 422, ["body", "weather"]),
    ({"history": ["a", "b"]}, 422, ["body", "history"]),
    ({}, 422, ["body", "user"]),
    ({"user": "x", "colour": "red"}, 422, ["body", "colour"]),
    ({"user": "x", "k": "twelve"}, 422, ["body", "k"]),
    ({"user": "x", "retrieval": "magic"}, 422, ["body", "retrieval"]),
    ({"user": "x", "restrict": ["no-such-item"]}, 422, ["body", "restrict"]),
])
def test_bad_requests_get_422_naming_the_field(client, body, status, loc):
    r = client.post("/recommend", json=body)
    assert r.status_code == status, r.text
    assert _loc(r) == loc, r.text
    assert client.get("/health").status_code == 200  # still serving


def test_malformed_json_and_other_4xx(client, service):
    r = client.post("/recommend", content=b'{"user": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/recommend/batch", json={"requests": [{"user": "x"}, {"user": "x", "k": -1}]})
    assert r.status_code == 422 and _loc(r)[:4] == ["body", "requests", 1, "k"]
    r = client.post("/recommend/batch", json={"requests": []})
    assert r.status_code == 422
    assert client.get("/items/no-such-item/similar").status_code == 404
    assert client.get(f"/items/{service.model.item_ids[0]}/similar?k=0").status_code == 422
    r = client.post("/items", json={"id": "short", "features": {"text-synth": [1.0]}})
    assert r.status_code == 422 and "text-synth" in r.json()["detail"][0]["msg"]
    r = client.post("/items", json={"id": service.model.item_ids[0], "features": {"text-synth": [0.0] * 16}})
    assert r.status_code == 422 and _loc(r) == ["body", "id"]  # ids are unique
    r = client.post("/items", json={"id": "nothing", "features": {}})
    assert r.status_code == 422 and _loc(r) == ["body", "features"]
    r = client.post("/items", json={"id": "odd", "features": {"smell": [1.0]}})
    assert r.status_code == 422 and _loc(r) == ["body", "features", "smell"]
    # the synthetic stores' "encoder" cannot embed raw text: said so, naming the field
    r = client.post("/items", json={"id": "by-text", "text": "red cotton dress"})
    assert r.status_code == 422 and _loc(r) == ["body", "text"] and "not available" in r.json()["detail"][0]["msg"]
    # one modality given, the other filled with the mean: accepted
    r = client.post("/items", json={"id": "text-only", "features": {"text-synth": [1.0] * 16}})
    assert r.status_code == 201 and r.json()["n_items"] == service.model.n_items
    assert client.get("/health").json()["status"] == "ok"


def test_similar_health_and_docs(client, service):
    m = service.model
    r = client.get(f"/items/{m.item_ids[5]}/similar", params={"k": 4}).json()
    assert len(r["items"]) == 4 and m.item_ids[5] not in [x["id"] for x in r["items"]]
    h = client.get("/health").json()
    assert h["checksum"] == m.checksum and h["n_users"] == len(m.user_ids)
    assert h["modes"] == {"context": 2, "time": 12} and h["content_projection"]
    assert client.get("/docs").status_code == 200
    assert "/recommend" in client.get("/openapi.json").json()["paths"]


def test_loopback_server_concurrent_requests_while_items_are_added(served):
    import httpx
    import numpy as np

    from tests.serve.conftest import loopback_server

    svc = RecommendService.open(served[2], retrieval="folded")
    with loopback_server(create_app(svc)) as url:
        users = svc.model.user_ids
        dims = {m["name"]: m["dim"] for m in svc.model.manifest["content"]["modalities"]}

        local = threading.local()

        def work(j: int) -> tuple[int, int]:
            if not hasattr(local, "client"):  # one keep-alive connection per client thread
                local.client = httpx.Client(base_url=url, timeout=30)
            c = local.client
            if j % 10 == 0:  # an item added while others are being served
                feats = {n: np.random.default_rng(j).normal(size=d).tolist() for n, d in dims.items()}
                return c.post("/items", json={"id": f"added-{j}", "features": feats}).status_code, 12
            body = {"user": users[j % len(users)], "k": 12, "exclude_seen": bool(j % 2)}
            if j % 7 == 0:
                body["k"] = 0  # a bad one among the good ones
            r = c.post("/recommend", json=body)
            return r.status_code, len(r.json().get("items", []))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(work, range(120)))
        for j, (status, n) in enumerate(results):
            want = 201 if j % 10 == 0 else 422 if j % 7 == 0 else 200
            assert status == want and (status != 200 or n == 12), (j, status, n)
        h = httpx.get(f"{url}/health").json()
        assert h["n_added_items"] == 12 and h["n_items"] == len(svc.model.item_ids) + 12
