"""Shared fixtures. Real-data tests read ../shared/data (or $MRS_SHARED_DATA) and skip when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("MRS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """Root of the real data samples; the test is skipped when it is not there."""
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data samples not found at {root}")
    return root


def require(path: Path) -> Path:
    """Skip the calling test unless ``path`` exists."""
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    # Tests never reach a hub or W&B's servers.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def read_record():
    """``read_record(run_dir) -> bytes`` of an offline W&B run's ``run-*.wandb`` log.

    wandb-core closes the run's stream (and flushes the file) a few ms after ``run.finish()``
    returns, so wait until the file has stopped growing past its 7-byte header.
    """
    import time

    def read(run_path: Path, timeout: float = 20.0) -> bytes:
        deadline, last = time.time() + timeout, -1
        while True:
            files = list(Path(run_path).glob("run-*.wandb"))
            size = files[0].stat().st_size if files else -1
            if (size > 7 and size == last) or time.time() > deadline:
                return files[0].read_bytes() if files else b""
            last = size
            time.sleep(0.2)
    return read
