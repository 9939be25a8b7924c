"""One small planted dataset, one trained run and its exported model directory per session."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.train.conftest import tiny_overrides


@contextlib.contextmanager
def loopback_server(app) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port, in a thread; yields its URL and
    stops it on exit (the HTTP tests go through sockets, not the in-process TestClient)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline and th.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(10)


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """``(data_dir, run_dir, model_dir)``: LightGCN + CP modes + early fusion on planted data."""
    from mrs.serve.export import export_run
    from mrs.synth import make_prepared
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    root = tmp_path_factory.mktemp("serve")
    # 8 planted clusters of ~25 items (4 styles x 2 contexts, no seasons): content says the cluster
    data = make_prepared(root / "ds", n_users=150, n_items=200, n_interactions=6000, seed=1,
                         modes=True, features_dim=16, n_styles=4, n_seasons=1, season_strength=0.0)
    cfg = load_train_config(None, tiny_overrides(
        data, model__encoder="lightgcn", model__fusion="early", model__dim=16, model__joint_dim=16,
        data__features="[text-synth, image-synth]", train__epochs=8, train__eval_every=8, eval__bootstrap=0,
        wandb__enabled="false"))
    run_train(cfg, root / "run")
    export_run(root / "run", root / "model")
    return data, root / "run", root / "model"


@pytest.fixture(scope="module")
def service(served):
    """A folded-retrieval service on the session's model (one per test module: items added by
    one module's tests stay out of the others')."""
    from mrs.serve.service import RecommendService

    return RecommendService.open(served[2], retrieval="folded")


@pytest.fixture(scope="module")
def client(service):
    """FastAPI's in-process client of :func:`service`."""
    from fastapi.testclient import TestClient

    from mrs.serve.api import create_app

    return TestClient(create_app(service))
