"""synth -> mrs prepare: the prepared dataset is the planted sample, row for row."""
from __future__ import annotations

import functools
import http.server
import socket
import threading

import numpy as np
import pandas as pd
import pytest

from mrs.data import load_prepared
from mrs.synth import load_planted, plant, sample_all
from mrs.synth.cli import SynthJob, synthesize
from mrs.synth.planted import SynthConfig

SIZE = dict(n_users=150, n_items=250, n_interactions=4000, seed=5)


def test_hm_synth_prepare_roundtrip(tmp_path):
    hm = pytest.importorskip("mrs.prep.hm")
    raw = tmp_path / "raw"
    synthesize(SynthJob(format="hm", out=str(raw), model=SynthConfig(**SIZE)))
    d = load_prepared(hm.prepare_hm(hm.HMConfig(raw=str(raw), out=str(tmp_path / "prep"))))
    p, ids = load_planted(raw / "planted.npz")
    ch = sample_all(p, SynthConfig(**SIZE), "channel")
    traded = np.unique(ch.item)
    assert (d.n_users, d.n_items, d.meta["n_interactions"]) == (SIZE["n_users"], len(traded), SIZE["n_interactions"])
    assert d.n_items < SIZE["n_items"]  # the planted cold items never trade
    assert d.mode_names == ["context", "time"] and d.mode_cardinalities == [2, 12]
    # every prepared row is the planted row: same customer, article, day, channel and month
    inter = d.interactions.sort_values(["ts", "user", "item"], kind="stable")
    got = pd.DataFrame({"user": d.users["user_id"].to_numpy()[inter["user"]],
                        "item": d.items["item_id"].to_numpy()[inter["item"]],
                        "day": inter["ts"].to_numpy() // 86400,
                        "context": inter["context"].to_numpy(), "time": inter["time"].to_numpy()})
    want = pd.DataFrame({"user": ids["user_ids"][ch.user], "item": ids["item_ids"][ch.item], "day": ch.day,
                         "context": ch.context, "time": ch.month})
    key = ["day", "user", "item", "context"]
    assert got.sort_values(key).reset_index(drop=True).equals(
        want.astype(got.dtypes.to_dict()).sort_values(key).reset_index(drop=True))
    # splits: the last 7 days test, the 7 before valid
    assert d.meta["splits"]["test"] > 0 and d.meta["splits"]["valid"] > 0
    assert d.items["image"].notna().all() and d.items["text"].str.len().min() > 30


def test_amazon2023_synth_prepare_roundtrip(tmp_path):
    az = pytest.importorskip("mrs.prep.amazon2023")
    raw = tmp_path / "raw"
    synthesize(SynthJob(format="amazon2023", out=str(raw), images=False, model=SynthConfig(**SIZE)))
    d = load_prepared(az.prepare_amazon2023(az.Amazon2023Config(
        reviews=str(raw / "Synth_Fashion.jsonl"), meta=str(raw / "meta_Synth_Fashion.jsonl"),
        out=str(tmp_path / "prep"))))
    cfg = SynthConfig(**SIZE)
    ch = sample_all(plant(cfg), cfg, "weekend")
    pairs = np.unique(ch.user.astype(np.int64) * cfg.n_items + ch.item)  # dedup keeps one per pair
    assert d.meta["n_interactions"] == len(pairs)
    assert d.n_users == cfg.n_users and d.n_items == len(np.unique(ch.item))
    assert d.mode_names == ["context", "time"]
    weekend = (pd.to_datetime(d.interactions["ts"], unit="s", utc=True).dt.dayofweek >= 5).astype(int)
    assert np.array_equal(weekend.to_numpy(), d.interactions["context"].to_numpy())
    assert d.items["text"].str.contains("look", case=False).all()


def test_hm_quirks_reach_prepare(tmp_path):
    hm = pytest.importorskip("mrs.prep.hm")
    raw = tmp_path / "raw"
    synthesize(SynthJob(format="hm", out=str(raw), missing_articles=0.3, int_article_ids=True,
                        model=SynthConfig(**SIZE)))
    first = (raw / "transactions_train.csv").read_text().splitlines()[1].split(",")[2]
    assert not first.startswith("0")  # integer spelling
    arts = pd.read_csv(raw / "articles.csv")
    n_img = len(list((raw / "images").rglob("*.jpg")))
    assert n_img == len(arts) and 0.6 * SIZE["n_items"] < len(arts) < 0.8 * SIZE["n_items"]
    d = load_prepared(hm.prepare_hm(hm.HMConfig(raw=str(raw), out=str(tmp_path / "prep"))))
    assert d.items["item_id"].str.fullmatch(r"0\d{9}").all()  # both spellings -> one id
    listed = set(arts["article_id"].astype(str).str.zfill(10))
    unlisted = int((~d.items["item_id"].isin(listed)).sum())
    assert unlisted > 0 and d.meta["n_items_without_article_row"] == unlisted
    assert d.items["image"].isna().sum() == unlisted


def test_amazon_variant_asins_keep_parent_items(tmp_path):
    import json

    raw = tmp_path / "raw"
    synthesize(SynthJob(format="amazon2023", out=str(raw), images=False, variant_asins=0.3,
                        model=SynthConfig(**SIZE)))
    recs = [json.loads(x) for x in (raw / "Synth_Fashion.jsonl").read_text().splitlines()]
    differ = np.mean([r["asin"] != r["parent_asin"] for r in recs])
    assert 0.25 < differ < 0.35


def test_amazon2023_images_download_from_the_recorded_urls(tmp_path):
    """synth (images + URLs) -> prepare -> download-images from a loopback server: same bytes."""
    az = pytest.importorskip("mrs.prep.amazon2023")
    images = pytest.importorskip("mrs.prep.images")
    with socket.socket() as s:  # a free port, known before the URLs are written
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raw = tmp_path / "raw"
    size = dict(n_users=40, n_items=30, n_interactions=300, seed=1)
    synthesize(SynthJob(format="amazon2023", out=str(raw), image_base_url=f"http://127.0.0.1:{port}/I",
                        model=SynthConfig(**size)))
    handler = functools.partial(_QuietHandler, directory=str(raw / "images"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prep = az.prepare_amazon2023(az.Amazon2023Config(
            reviews=str(raw / "Synth_Fashion.jsonl"), meta=str(raw / "meta_Synth_Fashion.jsonl"),
            out=str(tmp_path / "prep")))
        report = images.download_images(images.DownloadConfig(dataset=str(prep), image_root=str(tmp_path / "img"),
                                                              workers=4, timeout=5, retries=0))
    finally:
        server.shutdown()
    d = load_prepared(prep)
    assert report["failed"] == 0 and report["ok"] == d.n_items
    for _, row in d.items.iterrows():
        got = (tmp_path / "img" / row["image"]).read_bytes()
        assert got == (raw / "images" / f"{row['item_id']}.jpg").read_bytes()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path: str) -> str:  # serve /I/<asin>.jpg from the images folder
        return super().translate_path(path[2:] if path.startswith("/I/") else path)

    def log_message(self, *args) -> None:
        pass
