"""``mrs prepare mmrec`` and ``mrs prepare recbole`` on files written in exactly those formats."""
from __future__ import annotations

import numpy as np
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.features import load_features
from mrs.prep.mmrec import MMRecConfig, prepare_mmrec
from mrs.prep.recbole import RecBoleConfig, prepare_recbole

# MMRec's baby.inter layout: tab-separated, 0-based ids, x_label 0/1/2
INTER = ("userID\titemID\trating\ttimestamp\tx_label\n"
         "0\t0\t5.0\t1400000000\t0\n0\t1\t4.0\t1400000100\t0\n0\t2\t5.0\t1400000200\t1\n0\t3\t3.0\t1400000300\t2\n"
         "1\t1\t5.0\t1400000000\t0\n1\t3\t4.0\t1400000100\t2\n2\t0\t2.0\t1400000000\t1\n2\t2\t5.0\t1400000050\t0\n")


def mmrec_dir(tmp_path, inter=INTER, n_items=4, text_rows=None):
    d = tmp_path / "baby"
    d.mkdir(parents=True)
    (d / "baby.inter").write_text(inter)
    rng = np.random.default_rng(0)
    np.save(d / "image_feat.npy", rng.normal(size=(n_items, 16)).astype(np.float32))
    np.save(d / "text_feat.npy", rng.normal(size=(text_rows or n_items, 8)).astype(np.float32))
    return d


def test_mmrec_keeps_split_ids_and_features(tmp_path):
    d = mmrec_dir(tmp_path)
    out = tmp_path / "out"
    assert main(["prepare", "mmrec", "--dir", str(d), "--out", str(out)]) == 0
    ds = load_prepared(out)
    assert (ds.n_users, ds.n_items, ds.meta["name"]) == (3, 4, "baby")
    inter = ds.interactions
    assert inter.user.tolist() == [0, 0, 0, 0, 1, 1, 2, 2] and inter.item.tolist() == [0, 1, 2, 3, 1, 3, 0, 2]
    assert inter.split.tolist() == [0, 0, 1, 2, 0, 2, 1, 0]  # x_label exactly
    assert inter.ts.tolist()[:2] == [1400000000, 1400000100]
    assert ds.items.item_id.tolist() == ["0", "1", "2", "3"]  # row = itemID
    want = np.load(d / "image_feat.npy")
    x, present = load_features(out, "image-mmrec")
    assert present.all() and np.allclose(x.numpy(), want)  # float32, unnormalised, row = itemID
    assert load_features(out, "text-mmrec")[0].shape == (4, 8)


def test_mmrec_bad_input(tmp_path):
    no_label = "userID\titemID\trating\ttimestamp\n0\t0\t5\t1\n0\t1\t5\t2\n0\t2\t5\t3\n"
    d = mmrec_dir(tmp_path, inter=no_label, n_items=3)
    out = tmp_path / "out"
    with pytest.raises(MrsError, match=r"baby.inter: no 'x_label' column .*pass --split"):
        prepare_mmrec(MMRecConfig(dir=str(d), out=str(out)))
    assert not out.exists()
    ds = load_prepared(prepare_mmrec(MMRecConfig(dir=str(d), out=str(out), split="leave-last-out")))
    assert ds.interactions.split.tolist() == [0, 1, 2]
    # feature rows != item count
    d2 = mmrec_dir(tmp_path / "b", text_rows=5)
    with pytest.raises(MrsError, match=r"text_feat.npy: 5 feature rows for 4 items"):
        prepare_mmrec(MMRecConfig(dir=str(d2), out=str(tmp_path / "o2")))
    assert not (tmp_path / "o2").exists()
    # NaN in a feature file
    d3 = mmrec_dir(tmp_path / "c")
    x = np.load(d3 / "image_feat.npy")
    x[2, 5] = np.nan
    np.save(d3 / "image_feat.npy", x)
    with pytest.raises(MrsError, match=r"image_feat.npy: NaN or inf at row 2 \(itemID 2\), column 5"):
        prepare_mmrec(MMRecConfig(dir=str(d3), out=str(tmp_path / "o3")))
    assert not (tmp_path / "o3").exists()
    # missing itemID column
    d4 = mmrec_dir(tmp_path / "d", inter="userID\titem\tx_label\n0\t0\t0\n")
    with pytest.raises(MrsError, match=r"baby.inter: missing required column 'itemID'"):
        prepare_mmrec(MMRecConfig(dir=str(d4), out=str(tmp_path / "o4")))


RB_INTER = ("item_id:token\tuser_id:token\trating:float\ttimestamp:float\textra:token\n"  # any order, extra column
            "i1\tu1\t5\t100\tx\ni2\tu1\t4\t300\tx\ni3\tu1\t5\t200\tx\ni1\tu2\t3\t50\tx\n"
            "i2\tu2\t4\t60\tx\ni3\tu2\t5\t70\tx\n")
RB_ITEM = ("item_id:token\ttitle:token_seq\tprice:float\tcategories:token_seq\n"
           "i1\tred shoe\t9.5\tshoes sport\ni2\tblue hat\t3\thats\n")


def test_recbole_typed_headers_items_and_split(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    (d / "toy.inter").write_text(RB_INTER)
    (d / "toy.item").write_text(RB_ITEM)
    (d / "toy.user").write_text("user_id:token\tage:float\nu1\t30\nu2\t40\n")
    out = tmp_path / "out"
    assert main(["prepare", "recbole", "--dir", str(d), "--out", str(out)]) == 0
    ds = load_prepared(out)
    assert ds.users.user_id.tolist() == ["u1", "u2"] and ds.items.item_id.tolist() == ["i1", "i2", "i3"]
    inter = ds.interactions
    # leave-last-out by timestamp: u1's last is i2 (t=300), then i3 (t=200)
    split = dict(zip(zip(inter.user, inter.item), inter.split))
    assert split[(0, 1)] == 2 and split[(0, 2)] == 1 and split[(0, 0)] == 0
    assert split[(1, 2)] == 2 and split[(1, 1)] == 1
    assert ds.items.text.tolist() == ["title: red shoe. categories: shoes sport", "title: blue hat. categories: hats", ""]
    assert ds.users.attr_age.tolist() == [30.0, 40.0]


def test_recbole_bad_input(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    out = tmp_path / "out"
    (d / "toy.inter").write_text("user_id\titem_id:token\nu1\ti1\n")
    with pytest.raises(MrsError, match=r"toy.inter: header column 'user_id' has no type"):
        prepare_recbole(RecBoleConfig(dir=str(d), out=str(out)))
    (d / "toy.inter").write_text("user_id:token\titem_id:blob\nu1\ti1\n")
    with pytest.raises(MrsError, match=r"toy.inter: header column 'item_id:blob': unknown type 'blob'"):
        prepare_recbole(RecBoleConfig(dir=str(d), out=str(out)))
    (d / "toy.inter").write_text("user_id:token\trating:float\nu1\t1\n")
    with pytest.raises(MrsError, match=r"toy.inter: missing required column 'item_id'"):
        prepare_recbole(RecBoleConfig(dir=str(d), out=str(out)))
    rows = "".join(f"u{u}\ti{i}\t{t}\n" for u in range(40) for i, t in ((1, 1), (2, 2), (3, 3)))
    (d / "toy.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + rows + "u1\ti9\tsoon\nu2\n")
    with pytest.raises(MrsError, match=r"toy.inter: 2 of 122 rows malformed"):
        prepare_recbole(RecBoleConfig(dir=str(d), out=str(out)))
    assert not out.exists()
    ds = load_prepared(prepare_recbole(RecBoleConfig(dir=str(d), out=str(out), max_bad_frac=0.05)))
    assert len(ds.interactions) == 120 and ds.meta["bad_rows"]["toy.inter"]["bad"] == 2
