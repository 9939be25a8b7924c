"""Issue 23 §3, §4, §5, §24: RecBole and MMRec inputs that used to give silently wrong data
(duplicated rows leaking test into valid, wrapped timestamps, a blind ``max id + 1`` allocation,
string/complex feature files, a duplicated header field) are now counted, refused or named."""
from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pytest

from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.prep.mmrec import MMRecConfig, prepare_mmrec
from mrs.prep.recbole import RecBoleConfig, prepare_recbole
from tests.prep.test_mmrec_recbole import INTER, mmrec_dir

RB_HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _recbole(tmp_path, body: str, head: str = RB_HEAD):
    d = tmp_path / "toy"
    d.mkdir(exist_ok=True)
    (d / "toy.inter").write_text(head + body)
    return d


def _rows(n_users=20, n_items=5) -> list[str]:
    return [f"u{u}\ti{k}\t5\t{1000 + 10 * k}\n" for u in range(n_users) for k in range(n_items)]


# ----------------------------------------------------------------------------- §3 duplicated rows
def test_recbole_duplicated_rows_never_make_valid_a_copy_of_test(tmp_path, caplog):
    rows = _rows()
    d = _recbole(tmp_path, "".join(r + r for r in rows))          # every event listed twice
    with caplog.at_level(logging.WARNING):
        ds = load_prepared(prepare_recbole(RecBoleConfig(dir=str(d), out=str(tmp_path / "o"))))
    inter = ds.interactions
    valid = inter[inter.split == 1].set_index("user")
    test = inter[inter.split == 2].set_index("user")
    assert (valid.item != test.item).all() and (valid.ts < test.ts).all()
    for split in (1, 2):                                           # one valid and one test row per user
        assert (inter[inter.split == split].groupby("user").size() == 1).all()
    assert len(inter) == len(rows) and ds.meta["duplicate_rows_dropped"] == len(rows)
    assert f"dropped {len(rows)} rows identical to an earlier row" in caplog.text


def test_recbole_repeated_pairs_keep_the_earliest_and_dedup_false_keeps_them(tmp_path):
    # u0 bought i0 at t=1000 and again (a later, distinct event) at t=2000
    rows = _rows(n_users=2) + ["u0\ti0\t5\t2000\n"]
    d = _recbole(tmp_path, "".join(rows))
    ds = load_prepared(prepare_recbole(RecBoleConfig(dir=str(d), out=str(tmp_path / "o"))))
    assert ds.meta["repeated_pairs_dropped"] == 1 and ds.meta["duplicate_rows_dropped"] == 0
    u0 = ds.interactions[ds.interactions.user == 0]
    assert len(u0) == 5 and u0[u0.split == 2].ts.tolist() == [1040]
    ds = load_prepared(prepare_recbole(RecBoleConfig(dir=str(d), out=str(tmp_path / "o2"), dedup=False)))
    u0 = ds.interactions[ds.interactions.user == 0]
    assert len(u0) == 6 and u0[u0.split == 2].ts.tolist() == [2000] and ds.meta["repeated_pairs_dropped"] == 0


def test_mmrec_duplicated_rows_never_make_valid_a_copy_of_test(tmp_path):
    rows = [f"{u}\t{k}\t5\t{1000 + 10 * k}\n" for u in range(10) for k in range(5)]
    d = mmrec_dir(tmp_path, inter="userID\titemID\trating\ttimestamp\n" + "".join(r + r for r in rows), n_items=5)
    ds = load_prepared(prepare_mmrec(MMRecConfig(dir=str(d), out=str(tmp_path / "o"), split="leave-last-out")))
    inter = ds.interactions
    valid, test = inter[inter.split == 1].set_index("user"), inter[inter.split == 2].set_index("user")
    assert len(valid) == len(test) == 10 and (valid.item != test.item).all()
    assert ds.meta["duplicate_rows_dropped"] == len(rows)


# ----------------------------------------------------------------------------- §4 timestamps
@pytest.mark.parametrize("bad_ts", ["inf", "1e30", "-inf"])
def test_recbole_non_finite_or_huge_timestamp_is_a_counted_bad_row(tmp_path, bad_ts):
    rows = _rows(n_users=30)
    rows[4] = f"u0\ti4\t5\t{bad_ts}\n"                              # u0's latest event, file line 6
    d = _recbole(tmp_path, "".join(rows))
    ds = load_prepared(prepare_recbole(RecBoleConfig(dir=str(d), out=str(tmp_path / "o"))))
    bad = ds.meta["bad_rows"]["toy.inter"]
    assert bad["bad"] == 1 and list(bad["reasons"]) == ["timestamp infinite or beyond ±9.01e+15"]
    assert ds.interactions.ts.min() >= 1000                        # nothing wrapped to -2**63
    u0 = ds.interactions[ds.interactions.user == 0]
    assert len(u0) == 4 and u0[u0.split == 2].ts.tolist() == [1030]  # i4 is not "the latest"


def test_mmrec_infinite_timestamp_names_its_line(tmp_path, caplog):
    lines = INTER.splitlines(keepends=True)
    lines[3] = "0\t2\t5.0\t1e30\t1\n"
    d = mmrec_dir(tmp_path, inter="".join(lines))
    with caplog.at_level(logging.WARNING):
        with pytest.raises(MrsError, match=r"baby.inter: 1 of 8 rows malformed .*baby.inter:4 \(timestamp "
                                           r"infinite or beyond"):
            prepare_mmrec(MMRecConfig(dir=str(d), out=str(tmp_path / "o")))
    ds = load_prepared(prepare_mmrec(MMRecConfig(dir=str(d), out=str(tmp_path / "o"), max_bad_frac=0.2)))
    assert len(ds.interactions) == 7 and ds.interactions.ts.min() > 0


# ----------------------------------------------------------------------------- §5 sparse MMRec ids
@pytest.mark.parametrize("col,stray", [("itemID", 20_000_000), ("itemID", 123456789012), ("userID", 10 ** 9)])
def test_mmrec_stray_huge_id_is_an_error_naming_the_row(tmp_path, col, stray):
    lines = INTER.splitlines(keepends=True)
    f = lines[5].split("\t")
    f[0 if col == "userID" else 1] = str(stray)
    lines[5] = "\t".join(f)
    d = mmrec_dir(tmp_path, inter="".join(lines))
    t0 = time.monotonic()
    with pytest.raises(MrsError, match=rf"baby.inter:6: {col} {stray} is far beyond"):
        prepare_mmrec(MMRecConfig(dir=str(d), out=str(tmp_path / "o"), features=False))
    assert time.monotonic() - t0 < 5 and not (tmp_path / "o").exists()


def test_mmrec_ids_with_gaps_within_the_feature_rows_are_kept(tmp_path):
    # item 9 has no interaction but the feature files have 12 rows: dense by the features' count
    lines = INTER.splitlines(keepends=True)
    lines[5] = "1\t11\t5.0\t1400000000\t0\n"
    d = mmrec_dir(tmp_path, inter="".join(lines), n_items=12)
    ds = load_prepared(prepare_mmrec(MMRecConfig(dir=str(d), out=str(tmp_path / "o"))))
    assert ds.n_items == 12


# ----------------------------------------------------------------------------- §24 feature dtypes, header
@pytest.mark.parametrize("array,kind", [(np.array([["a", "b"]] * 4), "<U1"),
                                        (np.ones((4, 3), dtype=np.complex64), "complex64")])
def test_mmrec_string_or_complex_feature_file_is_a_one_line_error(tmp_path, array, kind, cli_error):
    d = mmrec_dir(tmp_path)
    np.save(d / "text_feat.npy", array)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)  # imaginary part dropped: fail
        rc, err = cli_error(["prepare", "mmrec", "--dir", str(d), "--out", str(tmp_path / "o")])
    assert f"text_feat.npy: dtype {kind} is not a real number type" in err
    assert not (tmp_path / "o").exists()


def test_recbole_duplicated_header_field_is_an_error_naming_it(tmp_path, cli_error):
    d = _recbole(tmp_path, "u1\ti1\ti2\n", head="user_id:token\titem_id:token\titem_id:token\n")
    rc, err = cli_error(["prepare", "recbole", "--dir", str(d), "--out", str(tmp_path / "o")])
    assert "toy.inter: header field 'item_id' appears twice" in err


def test_a_split_whose_held_out_rows_are_all_seen_is_a_one_line_error_not_a_crash(tmp_path):
    """What §3's leak did to training: every test row was also the user's valid row, so with
    masking no test query was left and ``rank_topk`` crashed on a (0, k) reshape at the very end."""
    import pandas as pd

    from mrs.data.prepared import write_prepared
    from mrs.eval.queries import build_queries

    inter = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1], "item": [0, 1, 1, 0, 2, 2], "split": [0, 1, 2] * 2})
    items = pd.DataFrame({"item": range(3), "item_id": ["a", "b", "c"], "text": "", "image": None})
    root = write_prepared(tmp_path / "d", inter, items, pd.DataFrame({"user": [0, 1], "user_id": ["u", "v"]}),
                          name="t", source="test", modes={}, params={}, input_checksum="x")
    with pytest.raises(MrsError, match=r"interactions.parquet: no 'test' query is left: all 2 held-out rows"):
        build_queries(load_prepared(root), "test")
    assert len(build_queries(load_prepared(root), "test", mask_seen=False)) == 2
