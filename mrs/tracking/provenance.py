"""Where a result came from: git commit (plus a dirty flag) and package versions.

Stored in every W&B run's config (``provenance``) and available to the trainer for the run
directory, so a number can always be traced to the code that produced it.
"""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

# Distributions whose versions change results; missing ones are reported as None.
PACKAGES = ("mrs", "torch", "torch_geometric", "numpy", "pandas", "pyarrow", "transformers",
            "timm", "optuna", "wandb")

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the repository holding mrs.

    ``dirty`` counts tracked files only: untracked scratch files do not change what ran.
    """
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:  # not a checkout (e.g. installed from a wheel)
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            try:
                out[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                out[name] = None
    return out


def provenance() -> dict[str, Any]:
    """Git state, package versions and the Python version, as one JSON-able dict."""
    return {"git": git_state(), "versions": package_versions(),
            "python": platform.python_version()}
