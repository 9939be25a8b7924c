"""``mrs prepare amazon2014 --attributes FILE`` (issue 21 point 1): S3-Rec's item2attributes.json
becomes each item's ``attributes`` list and ``"a12 a7"`` text; bad files are one-line errors."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared

SEQ = "7 1 2 3 4\n9 2 3 5\n8 5 1 4\n"   # items in order of first appearance: 1 2 3 4 5


def _prepare(tmp_path, attrs_text: str, *extra: str) -> int:
    (tmp_path / "seq.txt").write_text(SEQ)
    (tmp_path / "attr.json").write_text(attrs_text)
    return main(["prepare", "amazon2014", "--sequences", str(tmp_path / "seq.txt"), "--attributes",
                 str(tmp_path / "attr.json"), "--out", str(tmp_path / "d"), "--split", "leave-last-out", *extra])


def test_items_get_attribute_lists_and_token_text(tmp_path, caplog):
    attrs = {"1": [12, 7, 301], "2": [7, 7], "3": [], "4": [5], "99": [1]}   # 5: absent; 99: not in the sequences
    with caplog.at_level(logging.INFO):
        assert _prepare(tmp_path, json.dumps(attrs)) == 0
    d = load_prepared(tmp_path / "d")
    assert d.items.item_id.tolist() == ["1", "2", "3", "4", "5"]
    assert d.items.text.tolist() == ["a12 a7 a301", "a7", "", "a5", ""]
    assert [a.tolist() for a in d.items.attributes] == [[12, 7, 301], [7], [], [5], []]
    assert d.items.attributes.iloc[0].dtype == np.int64
    assert d.meta["attributes"] == {
        "file": "attr.json", "items_with_attributes": 3, "items_without_attributes": 2,
        "items_not_in_sequences": 1, "distinct_attributes": 4, "mean_per_item": round(5 / 3, 4),
        "repeats_dropped": 1}
    assert "attr.json: 1 items are not in the sequences and are skipped (e.g. 99)" in caplog.text
    assert "2 of 5 items of the sequences have no attributes (empty text; e.g. 3, 5)" in caplog.text
    assert d.meta["params"]["attributes"].endswith("attr.json")
    # the attribute file is part of the input checksum: another file, another checksum
    first = d.meta["input_checksum"]
    assert _prepare(tmp_path, json.dumps({**attrs, "5": [2]}), "--overwrite") == 0
    assert load_prepared(tmp_path / "d").meta["input_checksum"] != first


def test_without_attributes_the_items_are_as_before(tmp_path):
    (tmp_path / "seq.txt").write_text(SEQ)
    assert main(["prepare", "amazon2014", "--sequences", str(tmp_path / "seq.txt"), "--out", str(tmp_path / "d")]) == 0
    d = load_prepared(tmp_path / "d")
    assert "attributes" not in d.items and set(d.items.text) == {""} and "attributes" not in d.meta


@pytest.mark.parametrize("text,message", [
    ('{"1": [1, 2], "2": [3', "attr.json: malformed JSON (Expecting"),
    ('[[1, 2]]', "attr.json: expected a JSON object {item_id: [attribute_id, ...]}, got a list"),
    ('{"1": [1], "x7": [2]}', "attr.json: item id 'x7' is not an integer"),
    ('{"1": [1], "1": [2]}', "attr.json: item '1' is given twice"),
    ('{"1": [1], "01": [2]}', "attr.json: item 1 is given twice"),
    ('{"1": 4}', "attr.json: item '1': expected a list of attribute ids, got 4"),
    ('{"1": [1, 2.5]}', "attr.json: item '1': attribute 2.5 is not an integer >= 0"),
    ('{"2": ["3"]}', "attr.json: item '2': attribute \"3\" is not an integer >= 0"),
    ('{"2": [true]}', "attr.json: item '2': attribute true is not an integer >= 0"),
    ('{"2": [-1]}', "attr.json: item '2': attribute -1 is not an integer >= 0"),
    ('{"100": [1], "101": [2]}', "attr.json: none of its 2 items is in the sequences"),
])
def test_bad_attribute_files_are_one_line_errors(tmp_path, capsys, text, message):
    assert _prepare(tmp_path, text) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()   # checked before anything is written


def test_missing_attribute_file(tmp_path, capsys):
    (tmp_path / "seq.txt").write_text(SEQ)
    assert main(["prepare", "amazon2014", "--sequences", str(tmp_path / "seq.txt"), "--attributes",
                 str(tmp_path / "nope.json"), "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "amazon2014 --attributes: file not found:" in err and "nope.json" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "d").exists()


@pytest.mark.realdata
def test_real_beauty_with_attributes(shared_data, tmp_path):
    from tests.conftest import require
    seq = require(shared_data / "amazon2014" / "Beauty.txt")
    attrs = require(shared_data / "amazon2014" / "Beauty_item2attributes.json")
    out = tmp_path / "beauty"
    assert main(["prepare", "amazon2014", "--sequences", str(seq), "--attributes", str(attrs), "--out", str(out)]) == 0
    d = load_prepared(out)
    lengths = d.items.attributes.map(len).to_numpy()
    assert d.n_items == 12_101 and (lengths >= 1).all()
    assert len(np.unique(np.concatenate(d.items.attributes.to_list()))) == 637
    assert round(lengths.mean(), 1) == 3.7          # the data README's 3.7 per item
    assert d.meta["attributes"]["items_without_attributes"] == 0
    assert d.meta["attributes"]["items_not_in_sequences"] == 0
    assert d.meta["attributes"]["repeats_dropped"] == 5
    assert all(t.split() == [f"a{a}" for a in lst] for t, lst in zip(d.items.text[:50], d.items.attributes[:50]))
