"""Issue 23 §13: the server's exposure is documented, and an optional API key guards mutating routes."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mrs.cli import build_parser
from mrs.errors import MrsError
from mrs.serve.api import create_app
from mrs.serve.service import RecommendService


@pytest.fixture(scope="module")
def service(tiny_model):
    return RecommendService.open(tiny_model, retrieval="exact")


def test_api_key_guards_post_items_only(service):
    client = TestClient(create_app(service, api_key="s3cret"))
    item = {"id": "new-1", "features": {"x": [0.0]}}
    assert client.post("/items", json=item).status_code == 401
    assert client.post("/items", json=item, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.post("/items", json=item, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code != 401  # past the key (this model has no content projection: 422)
    assert client.post("/items", json=item, headers={"X-API-Key": "s3cret"}).status_code != 401
    assert client.get("/health").status_code == 200  # reads stay open
    assert client.post("/recommend", json={"user": service.model.user_ids[0]}).status_code == 200
    with pytest.raises(MrsError, match="api_key: empty"):
        create_app(service, api_key="")


def test_serve_api_key_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("MRS_API_KEY", "from-env")
    args = build_parser().parse_args(["serve", "--model", "m"])
    assert args.api_key == "from-env" and args.host == "127.0.0.1"


def test_serve_help_and_security_md_say_what_is_exposed(capsys):
    from pathlib import Path

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "binds 127.0.0.1" in text and "no authentication" in text and "POST /items" in text
    assert "--api-key" in text and "MRS_API_KEY" in text
    sec = " ".join((Path(__file__).parents[2] / "SECURITY.md").read_text().split())
    for phrase in ("binds 127.0.0.1", "no authentication", "MRS_API_KEY", "reverse proxy"):
        assert phrase in sec, phrase
