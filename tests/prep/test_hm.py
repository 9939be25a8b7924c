"""``mrs prepare hm`` on tiny Kaggle-format files written here (quirks included) and the real sample."""
from __future__ import annotations

import pandas as pd
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.prep.hm import HMConfig, prepare_hm
from tests.conftest import require

ART_HEADER = ("article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
              "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,"
              "perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,"
              "perceived_colour_master_name,department_no,department_name,index_code,index_name,"
              "index_group_no,index_group_name,section_no,section_name,garment_group_no,"
              "garment_group_name,detail_desc")


def _article(aid: str, name: str) -> str:
    return (f'{aid},{aid[:7]},{name},253,Vest top,Garment Upper body,1010016,Solid,9,Black,4,Dark,5,'
            f'Black,1676,Jersey Basic,A,Ladieswear,1,Ladieswear,16,"Womens Everyday Basics",1002,'
            f'Jersey Basic,"Jersey top, narrow straps."')


def _raw(tmp_path, tx_lines, index_col=False, with_images=True):
    raw = tmp_path / "raw"
    raw.mkdir()
    head = "t_dat,customer_id,article_id,price,sales_channel_id"
    if index_col:
        head = "," + head
        tx_lines = [f"{k},{line}" for k, line in enumerate(tx_lines)]
    (raw / "transactions_train.csv").write_text("\n".join([head, *tx_lines]) + "\n")
    (raw / "articles.csv").write_text("\n".join([ART_HEADER, _article("0108775015", "Strap top"),
                                                 _article("0200000001", "Other")]) + "\n")
    (raw / "customers.csv").write_text("customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\n"
                                       "c1,1.0,1.0,ACTIVE,Regularly,31.0,abc\nc9,,,ACTIVE,NONE,40.0,def\n")
    if with_images:
        (raw / "images" / "010").mkdir(parents=True)
        (raw / "images" / "010" / "0108775015.jpg").write_bytes(b"\xff\xd8fake")
    return raw


# Two spellings of one article (padded string and integer), a traded article with no articles.csv
# row (0300000002), repeat purchases (c1 buys 0108775015 twice on 09-01 and again on 09-20).
TX = [
    "2020-09-01,c1,0108775015,0.05,2",
    "2020-09-01,c1,108775015,0.05,2",
    "2020-09-02,c2,0300000002,0.02,1",
    "2020-09-10,c2,108775015,0.05,1",
    "2020-09-16,c3,300000002,0.03,2",
    "2020-09-20,c1,0108775015,0.05,1",
    "2020-09-22,c3,0108775015,0.05,2",
]


@pytest.mark.parametrize("index_col", [False, True])
def test_tiny_hm_quirks(tmp_path, index_col):
    raw = _raw(tmp_path, TX, index_col=index_col)
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "d"))))
    assert (d.n_users, d.n_items, len(d.interactions)) == (3, 2, 7)
    assert d.items.item_id.tolist() == ["0108775015", "0300000002"]
    it = d.items.set_index("item_id")
    assert it.loc["0108775015", "text"].startswith("Strap top | Vest top | Garment Upper body | Black | Solid")
    assert it.loc["0108775015", "image"] == "010/0108775015.jpg"
    assert it.loc["0300000002", "text"] == "" and pd.isna(it.loc["0300000002", "image"])
    assert d.meta["n_items_without_article_row"] == 1 and d.meta["n_items_with_image"] == 1
    assert d.meta["image_root"] == str((raw / "images").resolve())
    assert d.meta["repeat_rows"] == 2 and d.meta["same_day_repeat_rows"] == 1
    assert d.users.user_id.tolist() == ["c1", "c2", "c3"] and d.meta["n_users_without_customer_row"] == 2
    assert d.users.age.iloc[0] == 31.0 and d.users.age.iloc[1:].isna().all()
    assert d.users.club_member_status.iloc[0] == "ACTIVE"
    # last day 09-22: test = 09-16..09-22, valid = 09-09..09-15
    assert d.interactions.split.tolist() == [0, 0, 0, 1, 2, 2, 2]
    assert d.meta["modes"]["context"]["labels"] == ["sales_channel_1", "sales_channel_2"]
    assert d.interactions.context.tolist() == [1, 1, 0, 0, 1, 0, 1]
    assert set(d.interactions.time) == {8} and d.meta["modes"]["time"]["cardinality"] == 12
    assert d.interactions.ts.iloc[0] == pd.Timestamp("2020-09-01", tz="UTC").timestamp()


def test_repeats_window_and_time_options(tmp_path):
    raw = _raw(tmp_path, TX)
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "a"), repeats="collapse_day")))
    assert len(d.interactions) == 6
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "b"), repeats="collapse")))
    assert len(d.interactions) == 5
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "c"), last_weeks=1,
                                          time_mode="season")))
    assert len(d.interactions) == 3 and d.n_users == 2 and d.n_items == 2
    assert d.meta["modes"]["time"]["labels"][3] == "autumn" and set(d.interactions.time) == {3}


def test_malformed_rows_skipped_with_lines_then_threshold(tmp_path, caplog):
    good = [f"2020-09-{1 + k % 20:02d},c{k % 7},0108775015,0.05,{1 + k % 2}" for k in range(300)]
    bad = ["2020-09-xx,c1,0108775015,0.05,2",   # unparseable date        (line 302)
           "2020-09-03,,0108775015,0.05,2",      # empty customer id       (line 303)
           "2020-09-03,c1,0108775015,0.05",      # wrong field count       (line 304)
           "2020-09-03,c1,01087X5015,0.05,2"]    # unparseable article id  (line 305)
    raw = _raw(tmp_path, good + bad)
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "d"), max_bad_frac=0.02)))
    assert len(d.interactions) == 300
    br = d.meta["bad_rows"]["transactions_train.csv"]
    assert br["rows"] == 304 and br["bad"] == 4
    assert br["reasons"] == {"wrong field count": 1, "unparseable t_dat": 1, "unparseable article_id": 1,
                             "empty customer_id": 1}
    for pos in ("transactions_train.csv:302 (unparseable t_dat)", "transactions_train.csv:303 (empty customer_id)",
                "transactions_train.csv:304 (wrong field count)", "transactions_train.csv:305 (unparseable article_id)"):
        assert pos in caplog.text
    with pytest.raises(MrsError, match=r"transactions_train\.csv: 4 of 304 rows malformed"):
        prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "e")))
    assert not (tmp_path / "e").exists()


def test_missing_file_column_and_empty_filter(tmp_path, capsys):
    raw = _raw(tmp_path, TX)
    (raw / "articles.csv").unlink()
    assert main(["prepare", "hm", "--raw", str(raw), "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip()
    assert "articles.csv" in err and len(err.splitlines()) == 1
    raw2 = tmp_path / "raw2"
    raw2.mkdir()
    (raw2 / "transactions_train.csv").write_text("t_dat,customer_id,price,sales_channel_id\n2020-09-01,c1,0.1,2\n")
    (raw2 / "articles.csv").write_text(ART_HEADER + "\n")
    with pytest.raises(MrsError, match=r"transactions_train\.csv: missing required column 'article_id'"):
        prepare_hm(HMConfig(raw=str(raw2), out=str(tmp_path / "d")))
    raw3 = tmp_path / "raw3"
    raw3.mkdir()
    (raw3 / "transactions_train.csv").write_text("t_dat,customer_id,article_id,price,sales_channel_id\n")
    (raw3 / "articles.csv").write_text(ART_HEADER + "\n")
    with pytest.raises(MrsError, match="no interactions left after reading"):
        prepare_hm(HMConfig(raw=str(raw3), out=str(tmp_path / "d")))


def test_config_file_and_set_override(tmp_path):
    raw = _raw(tmp_path, TX)
    cfg = tmp_path / "hm.yaml"
    cfg.write_text(f"raw: {raw}\nout: {tmp_path / 'd'}\nrepeats: collapse\ntime_mode: week\n")
    assert main(["prepare", "hm", "--config", str(cfg), "--set", "repeats=keep"]) == 0
    d = load_prepared(tmp_path / "d")
    assert len(d.interactions) == 7 and d.meta["params"]["time_mode"] == "week"
    assert d.meta["modes"]["time"]["cardinality"] == 53


@pytest.mark.realdata
def test_real_hm_sample(shared_data, tmp_path):
    raw = require(shared_data / "hm")
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "hm"))))
    assert (len(d.interactions), d.n_users, d.n_items) == (31_662, 1_364, 17_033)
    assert d.n_items - d.meta["n_items_without_article_row"] == 4_116
    assert d.meta["n_items_with_image"] == 6_279
    assert d.items.image.dropna().map(lambda p: (raw / "images" / p).is_file()).all()
    assert d.meta["splits"]["test"] > 0 and d.meta["splits"]["valid"] > 0
    assert d.mode_cardinalities == [2, 12]


def test_article_description_spanning_lines(tmp_path):
    raw = _raw(tmp_path, TX)
    art = _article("0108775015", "Strap top").replace('"Jersey top, narrow straps."', '"Jersey top,\nnarrow straps."')
    (raw / "articles.csv").write_text("\n".join([ART_HEADER, art, _article("0300000002", "Third")]) + "\n")
    d = load_prepared(prepare_hm(HMConfig(raw=str(raw), out=str(tmp_path / "d"))))
    it = d.items.set_index("item_id")
    assert it.loc["0108775015", "text"].endswith("Jersey top,\nnarrow straps.")
    assert it.loc["0300000002", "text"].startswith("Third") and d.meta["n_items_without_article_row"] == 0
