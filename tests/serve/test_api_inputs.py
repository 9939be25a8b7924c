"""Issue 23 §14-16: request inputs the API used to mishandle (repeated restrict ids, non-finite
numbers, item ids no URL could reach)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mrs.serve.api import create_app
from mrs.serve.service import RecommendService


def _post_raw(client, path: str, text: str):
    """A body with JSON's non-standard NaN / Infinity literals (Python's json reads them)."""
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("retrieval", ["folded", "exact", "two_stage"])
def test_restrict_with_repeated_ids_returns_each_item_once(client, service, retrieval):
    ids = service.model.item_ids
    restrict = [ids[3], ids[3], ids[7], ids[3], ids[9], ids[7]]
    for user in (service.model.user_ids[2], "stranger"):  # ranked, and the popular fallback
        r = client.post("/recommend", json={"user": user, "k": 3, "restrict": restrict, "retrieval": retrieval})
        assert r.status_code == 200, r.text
        got = [x["id"] for x in r.json()["items"]]
        assert len(got) == len(set(got)), got
        if user != "stranger":  # the fallback lists only what the context has seen
            assert sorted(got) == sorted({ids[3], ids[7], ids[9]})


@pytest.mark.parametrize("body,loc", [
    ('{"user": "x", "explore": "ucb", "explore_strength": NaN}', ["body", "explore_strength"]),
    ('{"user": "x", "explore": "thompson", "explore_strength": Infinity}', ["body", "explore_strength"]),
    ('{"user": "x", "explore_strength": -Infinity}', ["body", "explore_strength"]),
])
def test_non_finite_numbers_are_a_422_naming_the_field(client, service, body, loc):
    body = body.replace('"x"', json.dumps(service.model.user_ids[0]))
    r = _post_raw(client, "/recommend", body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc
    r = _post_raw(client, "/recommend/batch", '{"requests": [' + body + "]}")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "requests", 0, *loc[1:]]
    assert client.get("/health").status_code == 200


def test_non_finite_feature_values_are_refused_and_not_added(client, service):
    n = service.model.n_items
    vec = ["1.0"] * 15
    for bad in ("NaN", "Infinity"):
        r = _post_raw(client, "/items", '{"id": "nan-item", "features": {"text-synth": [%s]}}'
                      % ", ".join([*vec, bad]))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][:3] == ["body", "features", "text-synth"]
    assert service.model.n_items == n


def test_huge_explore_strength_gives_a_full_list_or_a_422(client, service):
    """A finite β so large that the bonus overflows must not empty the list silently."""
    for explore in ("ucb", "thompson"):
        r = client.post("/recommend", json={"user": service.model.user_ids[1], "explore": explore,
                                            "explore_strength": 1e300, "k": 5})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "explore_strength"], r.text


def test_any_added_id_is_reachable_over_a_loopback_server(served):
    import httpx

    from tests.serve.conftest import loopback_server

    svc = RecommendService.open(served[2], retrieval="folded")
    dims = {m["name"]: m["dim"] for m in svc.model.manifest["content"]["modalities"]}
    odd = ["../../etc/passwd", "a/b", "..", "what?x=1#frag", "100% cotton", " spaced "]
    with loopback_server(create_app(svc)) as url, httpx.Client(base_url=url, timeout=30) as c:
        for j, item in enumerate(odd):
            feats = {n: np.random.default_rng(j).normal(size=d).tolist() for n, d in dims.items()}
            assert c.post("/items", json={"id": item, "features": feats}).status_code == 201
            r = c.get("/items/similar", params={"id": item, "k": 3})
            assert r.status_code == 200, (item, r.text)
            assert r.json()["id"] == item and len(r.json()["items"]) == 3
            assert item not in [x["id"] for x in r.json()["items"]]
        plain = svc.model.item_ids[4]  # the path form still works for a plain id, and agrees
        assert c.get(f"/items/{plain}/similar?k=3").json() == c.get("/items/similar", params={"id": plain, "k": 3}).json()
        assert c.get("/items/similar", params={"id": "no-such-item"}).status_code == 404
        assert c.get("/items/similar").status_code == 422
