"""A benchmark csv streamed in blocks (mrs.prep.csvstream, engine=duckdb) gives exactly the prepared
dataset of the whole-file numpy path, with the same bad-row counts, lines and one-line errors."""
from __future__ import annotations

import gzip

import numpy as np
import pyarrow.parquet as pq
import pytest

from mrs.errors import MrsError
from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023
from mrs.prep.common import BadRows
from mrs.prep.csvread import read_csv_typed
from mrs.prep.csvstream import TYPES, read_csv_to_parquet
from tests.prep.test_duckpost import engines_agree

pytest.importorskip("duckdb")

T0 = 1_600_000_000_000   # ms
HEAD = "user_id,parent_asin,rating,timestamp"
# planted bad rows: (row text, reason); each counted once, the first reason that applies
BAD = [("u1,A1,5.0", "wrong field count"), ("u2,A2,4.0,1,extra", "wrong field count"),
       (",A3,3.0,{t}", "empty user_id"), ("u3, ,3.0,{t}", "empty parent_asin"), ("u4,A4,2.0,", "empty timestamp")]


def _rows(n: int = 1200, seed: int = 0, bad_every: int = 150) -> tuple[list[str], dict[str, int]]:
    """Review rows with repeated pairs (same-second ties), skewed users/items, a missing rating and
    the ``BAD`` rows planted every ``bad_every`` rows; also the expected reason counts."""
    rng = np.random.default_rng(seed)
    rows, reasons = [HEAD], {}
    for k in range(n):
        t = T0 + int(rng.integers(0, 300)) * 86_400_000 // 5 + int(rng.integers(0, 3)) * 300
        rating = "" if k == 11 else f"{1 + k % 5}.0"         # an empty rating is kept, as NaN
        rows.append(f"u{int(rng.zipf(1.6)) % 80},A{int(rng.zipf(1.4)) % 50},{rating},{t}")
        if k % bad_every == 3:
            text, why = BAD[(k // bad_every) % len(BAD)]
            rows.append(text.format(t=t))
            reasons[why] = reasons.get(why, 0) + 1
    return rows, reasons


def _write(path, rows: list[str]):
    data = ("\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _both(tmp_path, csv, **kw):
    return engines_agree(tmp_path, csv, 512, **kw)


@pytest.mark.parametrize("kw", [dict(), dict(kcore=2), dict(split="mmrec", seed=3),
                                dict(split="temporal", test_days=10, valid_days=10, dedup=False)])
def test_streamed_csv_equals_numpy(tmp_path, kw):
    rows, reasons = _rows()
    d = _both(tmp_path, _write(tmp_path / "Cat.5core.csv", rows), **kw)
    assert d.meta["bad_rows"]["Cat.5core.csv"] == {"rows": len(rows) - 1, "bad": 8, "reasons": reasons}
    assert reasons == {"wrong field count": 4, "empty user_id": 2, "empty parent_asin": 1, "empty timestamp": 1}
    if kw.get("dedup", True):
        assert d.meta["repeated_pairs_dropped"] > 100            # the data has many repeats
    assert d.interactions["rating"].isna().sum() <= 1            # the one empty rating (unless deduped away)


def test_unparseable_values_and_index_history_columns_gz(tmp_path):
    """A value that does not parse sends both readers to their text pass; a pandas index column,
    a ``history`` column and no ``rating`` column are handled alike; gzip is read through."""
    rng = np.random.default_rng(2)
    rows = [",user_id,parent_asin,timestamp,history"]
    for k in range(600):
        rows.append(f"{k},u{int(rng.zipf(1.6)) % 60},A{int(rng.zipf(1.4)) % 40},"
                    f"{T0 + int(rng.integers(0, 200)) * 86_400_000 // 3},A1 A2")
    rows[40] = "39,u5,A5,12x,A1"                                    # unparseable timestamp
    rows[90] = "89,u5,A5"                                           # wrong field count
    rows[300] = "299,,A5,1600000000000,"                            # empty user_id
    d = _both(tmp_path, _write(tmp_path / "Cat.csv.gz", rows))
    reasons = d.meta["bad_rows"]["Cat.csv.gz"]["reasons"]
    assert reasons == {"wrong field count": 1, "unparseable timestamp": 1, "empty user_id": 1}
    assert d.interactions["rating"].isna().all()


def test_bad_rows_lines_and_order_match_the_whole_file_reader(tmp_path):
    """Same rows, same counts, same first lines in the same order, over many small blocks."""
    rows, _ = _rows(400, seed=1, bad_every=40)
    rows[60] = "u9,A9,notanumber,1600000000000"                     # text pass: unparseable rating
    csv = _write(tmp_path / "x.csv", rows)
    whole, streamed = BadRows(str(csv), keep=12), BadRows(str(csv), keep=12)
    req = ["user_id", "parent_asin", "timestamp"]
    t = read_csv_typed(csv, TYPES, whole, required=req, nonempty=req)
    n = read_csv_to_parquet(csv, streamed, 256, tmp_path / "raw.parquet")
    f = pq.ParquetFile(tmp_path / "raw.parquet")
    assert f.metadata.num_row_groups > 10                            # many blocks
    got = f.read()
    assert n == t.num_rows == got.num_rows
    assert got["row"].to_pylist() == list(range(n))
    assert got["user_id"].to_pylist() == t["user_id"].to_pylist()
    assert got["item_id"].to_pylist() == t["parent_asin"].to_pylist()
    assert got["ts"].to_pylist() == t["timestamp"].to_pylist()
    np.testing.assert_array_equal(got["rating"].to_numpy(), t["rating"].to_numpy(zero_copy_only=False))
    assert (streamed.total, streamed.bad, list(streamed.reasons.items()), streamed.first) == \
           (whole.total, whole.bad, list(whole.reasons.items()), whole.first)
    # by hand: line 1 is the header, data row k is line k + 2 plus the planted rows before it
    assert streamed.first[:2] == [f"{csv}:6 (wrong field count)", f"{csv}:47 (wrong field count)"]
    assert f"{csv}:61 (unparseable rating)" in streamed.first


def test_errors_are_the_same_one_line(tmp_path):
    (tmp_path / "nocol.csv").write_text("user_id,rating,timestamp\nu1,5.0,1\n")
    rows, _ = _rows(100, seed=3, bad_every=10)                      # 10 bad of 110 rows > 1%
    _write(tmp_path / "dirty.csv", rows)
    for name, match in (("nocol.csv", r"nocol\.csv: missing required column 'parent_asin'"),
                        ("dirty.csv", r"dirty\.csv: 10 of 110 rows malformed \(9\.09% > max_bad_frac 1\.00%\)")):
        msgs = []
        for engine in ("duckdb", "numpy"):
            with pytest.raises(MrsError, match=match) as e:
                prepare_amazon2023(Amazon2023Config(reviews=str(tmp_path / name), out=str(tmp_path / engine),
                                                    engine=engine, block_bytes=256))
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1] and "\n" not in msgs[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dirty.csv", "nocol.csv"]


def test_disk_full_while_streaming_the_csv_names_the_file(tmp_path):
    from pathlib import Path
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    rows, _ = _rows(2000)
    csv = _write(tmp_path / "x.csv", rows)
    with pytest.raises(MrsError, match="/dev/full: (disk full while spilling|cannot write spill file)"):
        read_csv_to_parquet(csv, BadRows(str(csv)), 512, Path("/dev/full"))


def test_a_row_longer_than_the_reader_block(tmp_path, monkeypatch):
    """pyarrow's blocks are capped (its readahead); a longer row reads with blocks of block_bytes,
    and a row longer than block_bytes is one line asking for a larger block_bytes."""
    from mrs.prep import csvstream
    monkeypatch.setattr(csvstream, "BLOCK_MAX", 256)
    rows = [HEAD + ",history"] + [f"u{k % 7},A{k % 5},5.0,{T0 + k},A1" for k in range(100)]
    rows[50] = f"u1,A9,4.0,{T0},{'A1 ' * 300}"                       # ~900 bytes
    csv = _write(tmp_path / "x.csv", rows)
    bad = BadRows(str(csv))
    assert read_csv_to_parquet(csv, bad, 4096, tmp_path / "raw.parquet") == 100
    assert pq.read_table(tmp_path / "raw.parquet")["item_id"][49].as_py() == "A9" and bad.bad == 0
    with pytest.raises(MrsError, match=r"x\.csv: a row longer than block_bytes=512; raise the config key block_bytes"):
        read_csv_to_parquet(csv, BadRows(str(csv)), 512, tmp_path / "raw.parquet")
