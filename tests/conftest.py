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
