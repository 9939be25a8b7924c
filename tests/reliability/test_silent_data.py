"""Issue 13 §4: inputs that used to give silently wrong data (seconds read as ms, BOMs, a damaged
feature store, JSON-escaped meta ids) are now converted with a warning or refused."""
from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pandas as pd
import pytest

from mrs.data.prepared import load_prepared, write_prepared
from mrs.errors import MrsError
from mrs.features import load_features
from mrs.features.store import write_store
from mrs.prep.amazon2014 import Amazon2014Config, prepare_amazon2014
from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023
from mrs.prep.hm import HMConfig, prepare_hm
from tests.prep.test_amazon2023 import DAY_MS, T0, _meta, _review, _write
from tests.prep.test_hm import TX, _raw

BOM = "\ufeff"


# ----------------------------------------------------------------------------- timestamp units
def _reviews_in_seconds(tmp_path, n=60):
    lines = []
    for k in range(n):
        r = json.loads(_review(f"u{k % 6}", f"A{k % 5}", day=k * 5))   # spread over ~10 months
        r["timestamp"] //= 1000                                        # seconds, not ms
        lines.append(json.dumps(r))
    return _write(tmp_path / "Cat.jsonl", lines)


def test_seconds_timestamps_are_detected_and_converted_with_a_warning(tmp_path, caplog):
    rev = _reviews_in_seconds(tmp_path)
    with caplog.at_level(logging.WARNING):
        d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "d"))))
    assert "timestamps are in seconds, not milliseconds (60 of 60 below 1e11" in caplog.text
    years = pd.to_datetime(d.interactions.ts, unit="s").dt.year
    assert years.min() == 2024                                  # not 1970
    assert d.interactions.time.nunique() > 1                    # not one time mode for every row
    assert d.meta["timestamp_unit"] == "s"


def test_timestamp_unit_can_be_forced_and_mixed_units_are_refused(tmp_path, cli_error):
    rev = _reviews_in_seconds(tmp_path)
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), out=str(tmp_path / "d"),
                                                          timestamp_unit="ms")))
    assert pd.to_datetime(d.interactions.ts, unit="s").dt.year.max() == 1970   # what the user asked
    lines = rev.read_text().splitlines()
    mixed = _write(tmp_path / "Mix.jsonl", lines[:30] + [_review(f"u{k}", "A1", k) for k in range(30)])
    rc, err = cli_error(["prepare", "amazon2023", "--reviews", str(mixed), "--out", str(tmp_path / "m")])
    assert "timestamps mix units: 30 of 60 are below 1e11" in err and "--timestamp-unit" in err
    assert main_ok(["prepare", "amazon2023", "--reviews", str(mixed), "--out", str(tmp_path / "m"),
                    "--timestamp-unit", "s"])


def main_ok(argv) -> bool:
    from mrs.cli import main

    return main(argv) == 0


# ----------------------------------------------------------------------------- byte order marks
def test_bom_in_hm_csvs_is_stripped(tmp_path):
    raw = _raw(tmp_path, TX)
    for name in ("transactions_train.csv", "articles.csv", "customers.csv"):
        p = raw / name
        p.write_text(BOM + p.read_text())
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "d"))))
    assert len(d.interactions) == len(TX) and d.items.text.str.len().gt(0).any()
    assert d.users["age"].notna().any()


def test_bom_in_amazon_csv_jsonl_and_2014_txt_costs_no_row(tmp_path):
    csv = tmp_path / "Cat.csv"
    csv.write_text(BOM + "user_id,parent_asin,rating,timestamp\n" +
                   "".join(f"u{k},A{k % 3},5.0,{T0 + k * DAY_MS}\n" for k in range(20)))
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(csv), out=str(tmp_path / "c"))))
    assert len(d.interactions) == 20
    jl = tmp_path / "Cat.jsonl"
    jl.write_text(BOM + "\n".join(_review(f"u{k}", f"A{k % 3}", k) for k in range(20)) + "\n")
    d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(jl), out=str(tmp_path / "j"))))
    assert len(d.interactions) == 20 and d.meta["bad_rows"]["Cat.jsonl"]["bad"] == 0
    txt = tmp_path / "seq.txt"
    txt.write_text(BOM + "".join(f"{u} 1 2 3 4\n" for u in range(1, 6)))
    d = load_prepared(prepare_amazon2014(Amazon2014Config(sequences=str(txt), out=str(tmp_path / "t"))))
    assert d.meta["bad_rows"]["seq.txt"]["bad"] == 0 and d.n_users == 5
    assert sorted(d.users.user_id) == ["1", "2", "3", "4", "5"]


# ----------------------------------------------------------------------------- damaged stores
def _dataset_with_store(tmp_path, n=3000, d=64, legacy=False):
    ids = [f"i{k}" for k in range(n)]
    items = pd.DataFrame({"item": np.arange(n), "item_id": ids, "text": "x", "image": None})
    inter = pd.DataFrame({"user": [0] * n, "item": np.arange(n), "split": [0] * n})
    root = write_prepared(tmp_path / "ds", inter, items, pd.DataFrame({"user": [0], "user_id": ["u"]}),
                          name="t", source="test", modes={}, params={}, input_checksum="x")
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)                      # what `mrs features` writes
    meta = {"encoder": "e", "encoder_version": "1", "normalisation": "l2",
            "items_checksum": load_prepared(root).meta["items_checksum"]}
    path = root / "features" / "text-e.h5"
    if legacy:   # a store written before per-chunk checksums
        path.parent.mkdir()
        with h5py.File(path, "w") as f:
            f.create_dataset("item_ids", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("features", data=x.astype(np.float16), chunks=(1024, d))
            f.create_dataset("present", data=np.ones(n, bool))
            for k, v in {**meta, "dim": d, "dtype": "float16", "n_items": n}.items():
                f.attrs[k] = v
    else:
        write_store(path, ids, x, np.ones(n, bool), meta)
    load_features(root, "text-e")                                      # sound before the damage
    return root, path


def _damage(path, nbytes=50_000):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    rng = np.random.default_rng(1)
    data[mid:mid + nbytes] = rng.integers(0, 255, nbytes, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_damaged_hdf5_store_fails_naming_store_and_rows(tmp_path):
    root, path = _dataset_with_store(tmp_path)
    _damage(path)
    with pytest.raises(MrsError, match=r"text-e.h5: damaged: /features rows \d+-\d+.* fail their checksum"):
        load_features(root, "text-e")


def test_damaged_legacy_store_fails_on_its_row_norms(tmp_path):
    root, path = _dataset_with_store(tmp_path, legacy=True)
    _damage(path)
    with pytest.raises(MrsError, match=r"text-e.h5: damaged: \d+ of 3000 present rows are not unit-norm"):
        load_features(root, "text-e")


# ----------------------------------------------------------------------------- meta ids
def test_json_escaped_meta_ids_match_and_unmatched_ids_are_reported(tmp_path, caplog):
    rev = _write(tmp_path / "Cat.jsonl", [_review(f"u{k % 4}", f"B0{k % 3}X", k) for k in range(12)])
    escaped = _meta("B00X", "Zero").replace('"parent_asin": "B00X"', '"parent_asin": "B0\\u0030X"')
    meta = _write(tmp_path / "meta_Cat.jsonl", [escaped, _meta("B01X", "One"), _meta("b02x", "wrong case")])
    with caplog.at_level(logging.WARNING):
        d = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=str(rev), meta=str(meta),
                                                              out=str(tmp_path / "d"))))
    text = dict(zip(d.items.item_id, d.items.text))
    assert text["B00X"].startswith("Zero") and text["B01X"].startswith("One")
    assert d.meta["n_items_without_meta"] == 1
    assert "1 of 3 review items have no meta row" in caplog.text
    assert "'B02X'" in caplog.text and "1 meta rows match no review item (e.g. 'b02x')" in caplog.text
