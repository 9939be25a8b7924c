"""``mrs prepare amazon2023``: raw jsonl(.gz) with broken lines, meta, k-core, official csv trio."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023
from mrs.prep.jsonl import IdBuilder
from tests.conftest import require

DAY_MS = 86_400_000
T0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC, a Monday


def _review(u, a, day, rating=5.0):
    return json.dumps({"rating": rating, "title": "t", "text": "x", "images": [], "asin": a + "-v",
                       "parent_asin": a, "user_id": u, "timestamp": T0 + day * DAY_MS,
                       "helpful_vote": 0, "verified_purchase": True})


def _meta(a, title, hi_res=True):
    img = {"thumb": f"http://h/{a}_t.jpg", "large": f"http://h/{a}_l.jpg", "variant": "MAIN",
           "hi_res": f"http://h/{a}_h.jpg" if hi_res else None}
    return json.dumps({"main_category": "Beauty", "title": title, "features": ["soft", "blue"],
                       "description": ["A thing."], "images": [img], "store": "Acme",
                       "categories": ["Beauty", "Skin"], "details": {"Brand": "Acme"}, "parent_asin": a})


def _write(path, lines):
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_id_builder_first_appearance_across_chunks():
    import pyarrow as pa
    b = IdBuilder()
    b.add(pa.array(["b", "a", "b"]))
    b.add(pa.array(["c", "a"]))
    codes, uniq = b.finish()
    assert codes.tolist() == [0, 1, 0, 2, 1] and uniq.to_pylist() == ["b", "a", "c"]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_raw_jsonl_streamed_with_bad_lines_meta_and_modes(tmp_path, suffix, caplog):
    good = [_review(f"u{k % 40}", f"A{k % 7}", day=k % 30) for k in range(400)]
    bad = ['{"user_id": "u1", "parent_asin": "A1", "timest', json.dumps({"user_id": "", "parent_asin": "A1",
           "timestamp": T0}), json.dumps({"user_id": "u2", "parent_asin": "A2"})]
    rev = _write(tmp_path / f"Cat{suffix}", good[:100] + bad + good[100:])
    meta = _write(tmp_path / "meta_Cat.jsonl", [_meta("A0", "Zero"), "not json", _meta("A1", "One", hi_res=False),
                                                _meta("ZZ", "untraded")])
    cfg = Amazon2023Config(reviews=str(rev), meta=str(meta), out=str(tmp_path / "d"), block_bytes=4096,
                           max_bad_frac=0.4, dedup=False)
    d = load_prepared(prepare_amazon2023(cfg))
    assert (d.n_users, d.n_items, len(d.interactions)) == (40, 7, 400)
    br = d.meta["bad_rows"][rev.name]
    assert br == {"rows": 403, "bad": 3, "reasons": {"broken JSON line": 1, "empty user_id": 1,
                                                     "missing timestamp": 1}}
    assert f"{rev.name}:101 (broken JSON line)" in caplog.text and f"{rev.name}:103 (missing timestamp)" in caplog.text
    it = d.items.set_index("item_id")
    assert it.loc["A0", "text"] == "Zero | soft | blue | A thing. | Beauty > Skin | Store: Acme | Brand: Acme"
    assert it.loc["A0", "image_url"] == "http://h/A0_h.jpg" and it.loc["A1", "image_url"] == "http://h/A1_l.jpg"
    assert it.loc["A5", "text"] == "" and pd.isna(it.loc["A5", "image_url"])
    assert d.meta["n_items_without_meta"] == 5 and d.meta["meta_bad_rows"]["bad"] == 1
    # timestamps ms -> s; day 5 (Saturday) is weekend, months all January
    i = d.interactions
    assert i.ts.min() == T0 // 1000
    assert ((i.ts // 86400 - T0 // DAY_MS) % 7 >= 5).astype(int).tolist() == i.context.tolist()
    assert set(i.time) == {0}
    # leave-last-out: each user's test row is its latest
    last = i.groupby("user").ts.transform("max")
    assert (i[i.split == 2].ts == last[i.split == 2]).all() and (i.split == 2).sum() == 40


def test_dedup_and_kcore(tmp_path):
    lines = [_review("u1", "A", 0), _review("u1", "A", 3), _review("u1", "B", 1), _review("u2", "A", 2),
             _review("u2", "B", 2), _review("u3", "C", 1)]
    rev = _write(tmp_path / "r.jsonl", lines)
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "a"))))
    assert len(d.interactions) == 5 and d.meta["repeated_pairs_dropped"] == 1
    assert d.interactions.ts.min() == T0 // 1000          # the first review of (u1, A) kept
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "b"), kcore=2)))
    assert (d.n_users, d.n_items, len(d.interactions)) == (2, 2, 4)
    with pytest.raises(MrsError, match=r"after the k-core filter \(kcore=3\)"):
        prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "c"), kcore=3))


def test_official_trio_detection_and_errors(tmp_path):
    head = "user_id,parent_asin,rating,timestamp,history"
    (tmp_path / "X.train.csv").write_text(f"{head}\nu1,A,5.0,{T0},\nu1,B,4.0,{T0 + DAY_MS},A\n")
    (tmp_path / "X.valid.csv").write_text(f"{head}\nu1,C,5.0,{T0 + 2 * DAY_MS},A B\n")
    with pytest.raises(MrsError, match=r"X\.test\.csv"):
        prepare_amazon2023(Amazon2023Config(reviews=str(tmp_path / "X.train.csv"), out=str(tmp_path / "d")))
    (tmp_path / "X.test.csv").write_text(f"{head}\nu1,A,5.0,{T0 + 3 * DAY_MS},A B C\n")
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(tmp_path / "X.train.csv"),
                                                          out=str(tmp_path / "d"))))
    assert d.interactions.split.tolist() == [0, 0, 1, 2] and d.name == "X"
    assert d.meta["params"]["split_used"] == "official"
    (tmp_path / "bad.csv").write_text("user_id,rating,timestamp\nu1,5.0,1\n")
    with pytest.raises(MrsError, match=r"bad\.csv: missing required column 'parent_asin'"):
        prepare_amazon2023(Amazon2023Config(reviews=str(tmp_path / "bad.csv"), out=str(tmp_path / "e")))


@pytest.mark.realdata
def test_real_all_beauty_official_and_leave_last_out(shared_data, tmp_path):
    root = require(shared_data / "amazon2023" / "All_Beauty")
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(root / "All_Beauty.train.csv"),
                                                          out=str(tmp_path / "o"))))
    assert (d.n_users, d.n_items, len(d.interactions)) == (253, 356, 2_535)
    assert d.meta["splits"] == {"train": 2_029, "valid": 253, "test": 253}
    # Our leave-last-out on the 5-core file reproduces the official last_out split exactly
    d5 = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(root / "All_Beauty.5core.csv"),
                                                           out=str(tmp_path / "f"))))
    assert d5.meta["splits"] == d.meta["splits"]
    key = lambda ds, s: set(zip(ds.users.user_id.to_numpy()[ds.split(s).user], ds.items.item_id.to_numpy()[ds.split(s).item]))  # noqa: E731
    assert key(d, "test") == key(d5, "test") and key(d, "valid") == key(d5, "valid")


@pytest.mark.realdata
def test_real_meta_sample(shared_data, tmp_path):
    meta = require(shared_data / "amazon2023" / "meta_Amazon_Fashion.sample.jsonl")
    asins = [json.loads(line)["parent_asin"] for line in meta.open()][:20]
    rev = _write(tmp_path / "r.jsonl", [_review(f"u{k % 5}", a, k) for k, a in enumerate(asins)])
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), meta=str(meta), out=str(tmp_path / "d"))))
    assert d.meta["n_items_without_meta"] == 0
    assert (d.items.text.str.len() > 20).all()
    assert d.items.image_url.str.startswith("https://").mean() > 0.9


def test_empty_parent_asin_falls_back_to_asin(tmp_path):
    r = json.loads(_review("u1", "P", 0))
    r.update(parent_asin="", asin="X")
    rev = _write(tmp_path / "r.jsonl", [_review("u1", "P", 1), json.dumps(r)])
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "d"))))
    assert sorted(d.items.item_id) == ["P", "X"] and d.meta["bad_rows"]["r.jsonl"]["bad"] == 0


def test_block_reader_line_numbers_with_blank_lines_and_bad_types(tmp_path, caplog):
    good = [_review(f"u{k % 9}", f"A{k % 4}", k % 20) for k in range(300)]
    r = json.loads(_review("u1", "A1", 0))
    r["timestamp"] = "yesterday"
    lines = good[:50] + ["", json.dumps(r)] + good[50:120] + ["  ", json.dumps({"user_id": "u1", "parent_asin": ""})] + good[120:]
    rev = _write(tmp_path / "r.jsonl", lines)
    cfg = Amazon2023Config(reviews=str(rev), out=str(tmp_path / "d"), block_bytes=1000, max_bad_frac=0.05,
                           dedup=False)
    d = load_prepared(prepare_amazon2023(cfg))
    assert len(d.interactions) == 300
    assert d.meta["bad_rows"]["r.jsonl"]["reasons"] == {"unparseable timestamp or rating": 1, "empty parent_asin": 1}
    assert "r.jsonl:52 (unparseable timestamp or rating)" in caplog.text
    assert "r.jsonl:124 (empty parent_asin)" in caplog.text
