"""engine=duckdb (out-of-core post-processing, mrs.prep.duckpost) gives exactly the numpy path's
prepared dataset: dedup with time ties, k-core, every split, time modes, meta; nothing left behind."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023
from tests.prep.test_amazon2023 import _meta, _write

pytest.importorskip("duckdb")

T0 = 1_600_000_000_000   # ms


def _lines(n: int = 3000, seed: int = 0) -> list[str]:
    """Reviews with repeated (user, item) pairs, many in the same second (ties: file order decides),
    some in the same millisecond, skewed users/items (so a k-core bites) and a few broken lines."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        u = int(rng.zipf(1.6)) % 97
        a = int(rng.zipf(1.4)) % 61
        ms = T0 + int(rng.integers(0, 400)) * 86_400_000 // 7 + int(rng.integers(0, 3)) * 400  # same-second ties
        out.append(json.dumps({"rating": float(1 + k % 5), "asin": f"A{a}-v", "parent_asin": f"A{a}",
                               "user_id": f"u{u}", "timestamp": ms}))
        if k % 500 == 7:
            out.append("{broken")
    return out


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Blocks of 256 rows: loading, mmrec's random keys and the parquet writer cross block edges."""
    from mrs.prep import duckpost
    monkeypatch.setattr(duckpost, "BATCH", 256)


def engines_agree(tmp_path, reviews, block_bytes: int, **kw):
    """Prepare ``reviews`` with both engines; assert identical output and no leftovers; the
    duckdb dataset."""
    outs = {}
    for engine in ("duckdb", "numpy"):
        cfg = Amazon2023Config(reviews=str(reviews), out=str(tmp_path / engine), block_bytes=block_bytes,
                               engine=engine, memory_mb=64, threads=2, **kw)
        outs[engine] = load_prepared(prepare_amazon2023(cfg))
    a, b = outs["duckdb"], outs["numpy"]
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.items, b.items)
    for m in (a.meta, b.meta):
        m["params"].pop("engine"), m["params"].pop("out")
    assert a.meta == b.meta
    assert not [p for p in tmp_path.iterdir() if ".spill-" in p.name or ".tmp-" in p.name]
    return a


def _both(tmp_path, **kw):
    rev = tmp_path / "Cat.jsonl"
    if not rev.exists():
        _write(rev, _lines())
    return engines_agree(tmp_path, rev, 4096, **kw)


@pytest.mark.parametrize("kw", [dict(kcore=3), dict(split="temporal", test_days=20, valid_days=20),
                                dict(split="mmrec", kcore=2, seed=7), dict(dedup=False, time_mode="week",
                                                                          context_mode="hour")])
def test_duckdb_equals_numpy(tmp_path, kw):
    d = _both(tmp_path, **kw)
    assert d.meta["bad_rows"]["Cat.jsonl"]["bad"] == 6
    if kw.get("dedup", True):
        assert d.meta["repeated_pairs_dropped"] > 100          # the data has many repeats
    if kw.get("kcore"):
        k = kw["kcore"]
        assert d.interactions.groupby("user").size().min() >= k
        assert d.interactions.groupby("item").size().min() >= k
    assert set(d.interactions["split"]) == {0, 1, 2}


def test_duckdb_dedup_keeps_first_by_time_then_file_order(tmp_path):
    rows = [("u1", "A", T0 + 5000), ("u1", "A", T0 + 1200), ("u1", "A", T0 + 1900),  # 1200 and 1900: same second
            ("u1", "B", T0), ("u2", "A", T0 - 10)]
    _write(tmp_path / "Cat.jsonl", [json.dumps({"rating": float(k + 1), "parent_asin": a, "asin": a,
                                                "user_id": u, "timestamp": t}) for k, (u, a, t) in enumerate(rows)])
    d = _both(tmp_path)
    inter = d.interactions
    # pair (u1, A): rows 1 and 2 share second T0/1000 + 1, so the earlier line (rating 2) survives
    assert inter["rating"].tolist() == [2.0, 4.0, 5.0]
    assert inter["ts"].tolist() == [T0 // 1000 + 1, T0 // 1000, (T0 - 10) // 1000]  # floor of ms
    assert d.meta["repeated_pairs_dropped"] == 2


def test_duckdb_with_meta_and_an_emptying_kcore(tmp_path):
    _write(tmp_path / "meta.jsonl", [_meta(f"A{a}", f"title {a}") for a in range(0, 61, 2)])
    d = _both(tmp_path, meta=str(tmp_path / "meta.jsonl"))
    assert (d.items["text"] != "").sum() > 0 and d.meta["n_items_without_meta"] > 0
    with pytest.raises(MrsError, match="k-core filter"):
        prepare_amazon2023(Amazon2023Config(reviews=str(tmp_path / "Cat.jsonl"), out=str(tmp_path / "e"),
                                            kcore=1000))
    assert not (tmp_path / "e").exists() and not [p for p in tmp_path.iterdir() if ".spill-" in p.name]


def test_duckdb_out_of_memory_is_one_line_naming_the_spill_dir(tmp_path):
    lines = [json.dumps({"rating": 5.0, "parent_asin": f"A{k % 5000}", "user_id": f"user-{k}", "timestamp": T0 + k})
             for k in range(150_000)]
    rev = _write(tmp_path / "Cat.jsonl", lines)
    with pytest.raises(MrsError, match=r"\.d\.spill-\d+: out-of-core post-processing failed \(memory_mb=1"):
        prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "d"), memory_mb=1, threads=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cat.jsonl"]


def test_sigterm_during_duckdb_leaves_no_output_and_no_spill(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    lines = [json.dumps({"rating": 5.0, "parent_asin": f"A{k % 9000}", "user_id": f"user-{k % 70000}",
                         "timestamp": T0 + k * 1000}) for k in range(300_000)]
    rev = _write(tmp_path / "Cat.jsonl", lines)
    code = ("import sys; from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023; "
            "prepare_amazon2023(Amazon2023Config(reviews=sys.argv[1], out=sys.argv[2], memory_mb=64, threads=1))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(rev), str(tmp_path / "d")], env=env,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".d.spill-*/prep.duckdb")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before DuckDB started: make the input larger"
    proc.send_signal(signal.SIGTERM)                   # mid-query: DuckDB is interrupted
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Cat.jsonl"]


@pytest.mark.parametrize("kw", [dict(kcore=2), dict(split="mmrec", seed=3)])
def test_duckdb_equals_numpy_on_a_benchmark_csv(tmp_path, kw):
    rng = np.random.default_rng(1)
    rows = ["user_id,parent_asin,rating,timestamp"]
    for k in range(2000):
        rows.append(f"u{int(rng.zipf(1.6)) % 80},A{int(rng.zipf(1.4)) % 50},{1 + k % 5}.0,"
                    f"{T0 + int(rng.integers(0, 300)) * 86_400_000 // 5}")
    (tmp_path / "Cat.5core.csv").write_text("\n".join(rows) + "\n")
    outs = {}
    for engine in ("duckdb", "numpy"):
        cfg = Amazon2023Config(reviews=str(tmp_path / "Cat.5core.csv"), out=str(tmp_path / engine), engine=engine,
                               **kw)
        outs[engine] = load_prepared(prepare_amazon2023(cfg))
    a, b = outs["duckdb"], outs["numpy"]
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.meta["repeated_pairs_dropped"] == b.meta["repeated_pairs_dropped"] > 0


def test_disk_full_while_spilling_the_reviews_names_the_file(tmp_path):
    from pathlib import Path

    from mrs.prep.common import BadRows
    from mrs.prep.jsonl import read_reviews_to_parquet
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    rev = _write(tmp_path / "Cat.jsonl", _lines(3000))
    with pytest.raises(MrsError, match="/dev/full: disk full while spilling"):
        read_reviews_to_parquet(rev, BadRows(str(rev)), 4096, Path("/dev/full"))
