"""mrs synth: the raw files are in the exact source formats, deterministic, and written atomically."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mrs.cli import main
from mrs.errors import MrsError
from mrs.synth.cli import SynthJob, synthesize
from mrs.synth.hm import ARTICLE_COLUMNS
from mrs.synth.planted import SynthConfig

SMALL = dict(n_users=120, n_items=200, n_interactions=3000)


def _job(out: Path, fmt: str = "hm", seed: int = 0, size: dict = SMALL, **kw) -> SynthJob:
    return SynthJob(format=fmt, out=str(out), model=SynthConfig(seed=seed, **size), **kw)


@pytest.fixture(scope="module")
def hm_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "hm"
    synthesize(_job(out))
    return out


@pytest.fixture(scope="module")
def amazon_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "amazon"
    synthesize(_job(out, "amazon2023"))
    return out


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_hm_transactions_format(hm_dir):
    lines = (hm_dir / "transactions_train.csv").read_text().splitlines()
    assert lines[0] == "t_dat,customer_id,article_id,price,sales_channel_id"
    row = re.compile(r"^\d{4}-\d{2}-\d{2},[0-9a-f]{64},\d{10},0\.\d+,[12]$")
    bad = [ln for ln in lines[1:] if not row.match(ln)]
    assert not bad, bad[:3]
    assert len(lines) - 1 == SMALL["n_interactions"]
    t = pd.read_csv(hm_dir / "transactions_train.csv", dtype={"article_id": str})
    days = pd.to_datetime(t["t_dat"])
    assert days.is_monotonic_increasing
    assert (days.max() - days.min()).days >= 700 and days.dt.month.nunique() == 12  # months recur
    arts = pd.read_csv(hm_dir / "articles.csv", dtype={"article_id": str})
    assert set(t["article_id"]) <= set(arts["article_id"])
    cust = pd.read_csv(hm_dir / "customers.csv")
    assert set(t["customer_id"]) == set(cust["customer_id"])  # every customer bought something


def test_hm_articles_customers_images(hm_dir):
    arts = pd.read_csv(hm_dir / "articles.csv", dtype=str)
    assert list(arts.columns) == ARTICLE_COLUMNS and len(arts.columns) == 25
    assert arts["article_id"].str.fullmatch(r"0\d{9}").all() and arts["article_id"].is_unique
    assert (arts["product_code"].astype(int) == arts["article_id"].astype(int) // 1000).all()
    assert arts["detail_desc"].str.len().min() > 10
    cust = pd.read_csv(hm_dir / "customers.csv")
    assert list(cust.columns) == ["customer_id", "FN", "Active", "club_member_status",
                                  "fashion_news_frequency", "age", "postal_code"]
    assert set(cust["FN"].dropna()) == {1.0} and cust["age"].between(16, 99).all()
    for a in arts["article_id"][:20]:
        img = Image.open(hm_dir / "images" / a[:3] / f"{a}.jpg")
        assert img.format == "JPEG" and img.size == (64, 64)


def test_hm_headers_match_real_sample(hm_dir, shared_data):
    for name in ("articles.csv", "customers.csv", "transactions_train.csv"):
        path = shared_data / "hm" / name
        if path.exists():
            with open(path) as f, open(hm_dir / name) as g:
                assert f.readline() == g.readline(), name


def test_amazon2023_format(amazon_dir):
    lines = (amazon_dir / "Synth_Fashion.jsonl").read_text().splitlines()
    assert len(lines) == SMALL["n_interactions"]
    recs = [json.loads(ln) for ln in lines]
    assert list(recs[0]) == ["rating", "title", "text", "images", "asin", "parent_asin", "user_id",
                             "timestamp", "helpful_vote", "verified_purchase"]
    ts = np.array([r["timestamp"] for r in recs])
    assert ts.dtype == np.int64 and ts.min() > 1_500_000_000_000  # milliseconds, not seconds
    assert all(isinstance(r["verified_purchase"], bool) and r["rating"] in (1.0, 2.0, 3.0, 4.0, 5.0)
               for r in recs)
    assert all(re.fullmatch(r"A[0-9A-Z]{27}", r["user_id"]) for r in recs)
    meta = [json.loads(ln) for ln in (amazon_dir / "meta_Synth_Fashion.jsonl").read_text().splitlines()]
    assert len(meta) == SMALL["n_items"]
    need = {"main_category", "title", "features", "description", "price", "images", "categories",
            "details", "store", "parent_asin"}
    assert all(need <= set(m) for m in meta)
    assert {r["parent_asin"] for r in recs} <= {m["parent_asin"] for m in meta}
    im = meta[0]["images"][0]
    assert set(im) == {"thumb", "large", "variant", "hi_res"} and im["large"].endswith(f"{meta[0]['parent_asin']}.jpg")
    assert (amazon_dir / "images" / f"{meta[0]['parent_asin']}.jpg").is_file()


def test_amazon_context_is_weekend_of_timestamp(amazon_dir):
    recs = [json.loads(ln) for ln in (amazon_dir / "Synth_Fashion.jsonl").read_text().splitlines()]
    weekday = pd.to_datetime([r["timestamp"] for r in recs], unit="ms", utc=True).dayofweek
    assert 0.2 < (weekday >= 5).mean() < 0.37  # 2 of 7 days


def test_deterministic_bytes(tmp_path, monkeypatch):
    import mrs.synth.planted as planted

    monkeypatch.setattr(planted, "RNG_BLOCK", 256)  # several random blocks and chunks, small data
    size = dict(n_users=60, n_items=60, n_interactions=1500)
    for fmt in ("hm", "amazon2023"):
        synthesize(_job(tmp_path / f"{fmt}-a", fmt, size=size))
        synthesize(_job(tmp_path / f"{fmt}-b", fmt, size=size, chunk_size=500))
        synthesize(_job(tmp_path / f"{fmt}-c", fmt, size=size, seed=1))
        a, b, c = (_tree_digest(tmp_path / f"{fmt}-{s}") for s in "abc")
        assert a.pop("planted.json") != b.pop("planted.json")  # it records the chunk size
        assert a == b and len(a) > 60
        assert a != c


def test_planted_ids_align_with_files(hm_dir):
    from mrs.synth import load_planted

    z = np.load(hm_dir / "planted.npz")
    p, ids = load_planted(hm_dir / "planted.npz")
    arts = pd.read_csv(hm_dir / "articles.csv", dtype={"article_id": str})
    assert list(ids["item_ids"]) == list(arts["article_id"])
    t = pd.read_csv(hm_dir / "transactions_train.csv", dtype={"article_id": str})
    user_index = {u: j for j, u in enumerate(ids["user_ids"])}
    per_user = np.bincount(t["customer_id"].map(user_index), minlength=SMALL["n_users"])
    assert np.array_equal(per_user, z["user_activity"])
    assert z["item_factors"].shape == (SMALL["n_items"], z["cluster_factors"].shape[1])
    assert np.array_equal(p.item_factors, z["item_factors"]) and np.array_equal(p.user_factors, z["user_factors"])
    info = json.loads((hm_dir / "planted.json").read_text())
    assert info["modes"]["context"]["labels"] == ["store", "online"] and info["n_cold_items"] == 20


def test_atomic_on_failure(tmp_path, monkeypatch):
    import mrs.synth.content as content

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(content, "render_image", boom)
    with pytest.raises(RuntimeError):
        synthesize(_job(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_cli(tmp_path, capsys):
    out = tmp_path / "raw"
    rc = main(["synth", "--format", "hm", "--out", str(out), "--users", "30", "--items", "40",
               "--interactions", "300", "--seed", "2", "--no-images"])
    assert rc == 0 and not (out / "images").exists()
    assert len((out / "transactions_train.csv").read_text().splitlines()) == 301
    assert "300 interactions" in capsys.readouterr().out
    rc = main(["synth", "--out", str(tmp_path / "x"), "--set", "model.bogus=1"])
    err = capsys.readouterr().err
    assert rc == 1 and "model.bogus" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(MrsError, match="cold_fraction"):
        synthesize(SynthJob(out=str(tmp_path / "y"), model=SynthConfig(cold_fraction=1.0)))
