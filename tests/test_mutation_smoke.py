"""Mutation smoke: break one line of the package, and the tests written for it must fail.

For each mutant below, the package source (``mrs/``) is copied into a temporary directory, one
exact piece of text is replaced there, and the mutant's test files run in a subprocess that
imports the copy (``PYTHONPATH=<copy>``). The run must end with failed tests (pytest exit code 1);
the same test files must pass on the unmutated copy. The real source is never touched.

When a refactor moves or rewrites one of the target lines, the mutant's ``old`` text is no longer
found and its test fails naming the mutant and the file: update ``old``/``new`` (and ``tests``)
in ``MUTANTS`` to the new code, keeping what each mutant breaks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str                # the source file to break, relative to the repository root
    old: str                 # exact text that must occur exactly once in ``file``
    new: str                 # what replaces it
    tests: tuple[str, ...]   # test files (relative to the repository root) that must fail on it


MUTANTS = [
    # 1. FREEDOM's pruned user-item graph is not renormalised after edge dropout: the kept edges
    #    keep the full graph's weights 1/sqrt(d_u d_i) instead of those of the pruned degrees.
    Mutant("pruned-graph-not-renormalised", "mrs/graph.py",
           old="    return bipartite_blocks(users[keep], items[keep], n_users, n_items)\n",
           new=("    w = norm_weights(users, items, n_users, n_items)[keep]  # MUTANT: full-graph degrees\n"
                "    return (to_csr(users[keep], items[keep], w, (n_users, n_items)),\n"
                "            to_csr(items[keep], users[keep], w, (n_items, n_users)))\n"),
           tests=("tests/models/test_graph.py",)),
    # 2. The L2 term on the CP mode factor rows (regularised towards one) is dropped from the loss.
    Mutant("no-l2-on-mode-rows", "mrs/models/objective.py",
           old="*(m - 1.0 for m in model.scorer.mode_rows(p.modes))]",
           new="]",
           tests=("tests/models/test_cp.py",)),
    # 3. The bootstrap ignores its confidence level: α hard-coded to 0.05 (always a 90% interval).
    Mutant("bootstrap-level-ignored", "mrs/eval/bootstrap.py",
           old="alpha = (1.0 - level) / 2.0",
           new="alpha = 0.05",
           tests=("tests/eval/test_slices_bootstrap.py",)),
]

TIMEOUT_S = 180  # per subprocess; each run takes a few seconds


def _copy_package(dest: Path) -> Path:
    """``mrs/`` copied to ``dest/src/mrs`` (no bytecode); returns ``dest/src``, the import root."""
    root = dest / "src"
    shutil.copytree(REPO / "mrs", root / "mrs", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _apply(mutant: Mutant, root: Path) -> None:
    path = root / mutant.file
    text = path.read_text()
    n = text.count(mutant.old)
    if n != 1:
        pytest.fail(f"mutant {mutant.name!r}: its target text occurs {n} times in {mutant.file} "
                    f"(expected exactly once); the code moved or changed, so update MUTANTS in "
                    f"{Path(__file__).relative_to(REPO)}. Target text:\n{mutant.old}", pytrace=False)
    path.write_text(text.replace(mutant.old, mutant.new))


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # the copy first (it shadows the repository's and the editable install's mrs); the repository
    # after it for the ``tests`` package the test files import from
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(REPO)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pytest(root: Path, tests: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    files = [str(REPO / t) for t in tests]
    missing = [t for t, f in zip(tests, files) if not Path(f).is_file()]
    assert not missing, f"test files named in MUTANTS are missing: {missing}"
    # cwd outside the repository: ``python -m`` puts the working directory first on sys.path
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
                          cwd=cwd, env=_env(root), capture_output=True, text=True, timeout=TIMEOUT_S)


def _tail(proc: subprocess.CompletedProcess, n: int = 3000) -> str:
    return (proc.stdout + proc.stderr)[-n:]


def test_unmutated_copy_passes_the_mutants_tests(tmp_path):
    root = _copy_package(tmp_path)
    where = subprocess.run([sys.executable, "-c", "import mrs; print(mrs.__file__)"], cwd=tmp_path,
                           env=_env(root), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert Path(where.stdout.strip()).parent == root / "mrs", f"the subprocess imported the wrong mrs: {where}"
    tests = tuple(dict.fromkeys(t for m in MUTANTS for t in m.tests))
    proc = _pytest(root, tests, tmp_path)
    assert proc.returncode == 0, f"the mutants' tests fail on the unmutated package:\n{_tail(proc)}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught(mutant, tmp_path):
    root = _copy_package(tmp_path)
    _apply(mutant, root)
    proc = _pytest(root, mutant.tests, tmp_path)
    # exit code 1 = tests ran and failed (2-4 would be a broken mutant: collection or usage errors)
    assert proc.returncode == 1, (f"mutant {mutant.name!r} survived {list(mutant.tests)} (pytest exit code "
                                  f"{proc.returncode}):\n{_tail(proc)}")
