"""``mrs prepare amazon2014`` on tiny files the test writes, and on the real Sports sample."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.prep.amazon2014 import Amazon2014Config, prepare_amazon2014


def _write(tmp_path, text):
    p = tmp_path / "seq.txt"
    p.write_text(text)
    return p


def test_tiny_leave_last_out(tmp_path):
    p = _write(tmp_path, "7 1 2 3 4\n9 2 3 5\n")
    out = prepare_amazon2014(Amazon2014Config(sequences=str(p), out=str(tmp_path / "d"),
                                              split="leave-last-out"))
    d = load_prepared(out)
    assert (d.n_users, d.n_items, len(d.interactions)) == (2, 5, 7)
    assert d.users.user_id.tolist() == ["7", "9"]
    assert d.items.item_id.tolist() == ["1", "2", "3", "4", "5"]
    assert d.interactions.split.tolist() == [0, 0, 1, 2, 0, 1, 2]
    assert "ts" not in d.interactions and d.mode_names == []


def test_malformed_lines_skipped_counted_and_threshold(tmp_path, caplog):
    lines = [f"{u} " + " ".join(str(i) for i in range(1, 6)) for u in range(1, 200)]
    p = _write(tmp_path, "\n".join(lines + ["200", "201 3 x 4"]) + "\n")
    cfg = Amazon2014Config(sequences=str(p), out=str(tmp_path / "d"), max_bad_frac=0.02)
    d = load_prepared(prepare_amazon2014(cfg))
    meta = d.meta["bad_rows"]["seq.txt"]
    assert meta["bad"] == 2 and meta["rows"] == 201
    assert "seq.txt:200 (user with no items)" in caplog.text
    cfg.max_bad_frac, cfg.overwrite = 0.005, True   # re-preparing an existing dataset needs --overwrite
    with pytest.raises(MrsError, match="seq.txt: 2 of 201 rows malformed"):
        prepare_amazon2014(cfg)


def test_repeated_pairs_dropped_and_counted(tmp_path):
    p = _write(tmp_path, "1 1 2 1 3 4\n")
    d = load_prepared(prepare_amazon2014(Amazon2014Config(sequences=str(p), out=str(tmp_path / "d"))))
    assert len(d.interactions) == 4 and d.meta["repeated_pairs"] == 1


def test_cli_missing_file_and_bad_key(tmp_path, capsys):
    assert main(["prepare", "amazon2014", "--sequences", str(tmp_path / "nope.txt"),
                 "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "nope.txt" in err and len(err.strip().splitlines()) == 1
    p = _write(tmp_path, "1 1 2 3\n")
    assert main(["prepare", "amazon2014", "--sequences", str(p), "--out", str(tmp_path / "d"),
                 "--set", "sed=3"]) == 1
    assert "unknown config key 'sed'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.realdata
def test_real_sports_counts_and_mmrec_split(shared_data, tmp_path):
    from tests.conftest import require
    seq = require(shared_data / "amazon2014" / "Sports_and_Outdoors.txt")
    out = tmp_path / "sports"
    assert main(["prepare", "amazon2014", "--sequences", str(seq), "--out", str(out), "--seed", "7"]) == 0
    d = load_prepared(out)
    assert (d.n_users, d.n_items, len(d.interactions)) == (35_598, 18_357, 296_337)
    # The split sizes follow from the per-user counts alone (MMRec's rule), whatever the seed.
    n = np.bincount(d.interactions.user.to_numpy())
    vt = np.where(n < 10, 2, (n * 0.2).astype(int))
    val = np.where(n < 10, 1, vt // 2)
    assert d.meta["splits"] == {"train": int((n - vt).sum()), "valid": int(val.sum()),
                                "test": int((vt - val).sum())}
    assert json.loads((out / "dataset.json").read_text())["params"]["seed"] == 7
