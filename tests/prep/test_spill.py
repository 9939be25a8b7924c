"""Spilled reading of raw Amazon 2023 jsonl: same result as in memory, dictionaries bounded by
distinct ids, nothing left behind on failure, a full disk named."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023
from mrs.prep.jsonl import IdBuilder
from mrs.prep.spill import GlobalIds, SpillColumn, spill_dir
from tests.prep.test_amazon2023 import _review, _write


def test_global_ids_equal_the_in_memory_builder_and_hold_only_distinct_ids(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [pa.array([f"user{x}" for x in rng.integers(0, 300, 200)]) for _ in range(12)]
    ref = IdBuilder()
    g = GlobalIds(tmp_path, "u", flush_bytes=1)        # flush after every block
    lazy = GlobalIds(tmp_path, "v", flush_bytes=1 << 30)  # one flush at the end
    for b in blocks:
        ref.add(b)
        g.add(b)
        lazy.add(b)
        assert g._pending == [] and len(g.uniques) <= 300   # memory: distinct ids only
    want_codes, want_ids = ref.finish()
    for gi in (g, lazy):
        codes, ids = gi.finish()
        assert codes.dtype == np.int32
        np.testing.assert_array_equal(codes, want_codes)
        assert ids.to_pylist() == want_ids.to_pylist()
    assert list(tmp_path.iterdir()) == []               # spill files are read once and deleted


def test_prepare_spilled_equals_in_memory(tmp_path):
    lines = [_review(f"u{k % 53}", f"A{(k * 7) % 31}", day=k % 60, rating=1 + k % 5) for k in range(2000)]
    rev = _write(tmp_path / "Cat.jsonl", lines)
    outs = {}
    for spill in (True, False):
        cfg = Amazon2023Config(reviews=str(rev), out=str(tmp_path / f"d{spill}"), block_bytes=8192,
                               spill=spill, kcore=2)
        outs[spill] = load_prepared(prepare_amazon2023(cfg))
    a, b = outs[True], outs[False]
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert not [p for p in tmp_path.iterdir() if ".spill-" in p.name]


def test_failed_prepare_leaves_no_output_and_no_spill(tmp_path):
    # 30% broken lines > max_bad_frac: fails after the stream was spilled
    lines = [_review(f"u{k}", "A1", day=k) if k % 3 else "{broken" for k in range(300)]
    rev = _write(tmp_path / "Cat.jsonl", lines)
    with pytest.raises(MrsError, match="Cat.jsonl"):
        prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "d"), block_bytes=2048))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cat.jsonl"]


def test_spill_dir_clears_what_a_killed_run_left(tmp_path):
    dead = tmp_path / f".d.spill-{2**22 + 12345}"      # beyond pid_max by default: never alive
    dead.mkdir()
    (dead / "user.codes.i32").write_bytes(b"x" * 16)
    mine = tmp_path / f".d.spill-{os.getpid()}"
    with spill_dir(tmp_path / "d") as sp:
        assert sp == mine and sp.is_dir() and not dead.exists()
    assert not mine.exists()


def test_disk_full_names_the_spill_file():
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    col = SpillColumn(Path("/dev/full"), np.int64)
    with pytest.raises(MrsError, match="/dev/full: disk full while spilling"):
        col.append(np.arange(1 << 16))
