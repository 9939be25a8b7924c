import json

import pandas as pd
import pytest

from mrs.data import load_prepared, write_prepared
from mrs.errors import MrsError


def _tiny():
    inter = pd.DataFrame({"user": [0, 0, 1, 1], "item": [0, 1, 1, 2], "ts": [1, 2, 3, 4],
                          "context": [0, 1, 0, 1], "split": [0, 0, 1, 2]})
    items = pd.DataFrame({"item": [0, 1, 2], "item_id": ["a", "b", "c"], "text": ["x", "y", ""],
                          "image": [None, "b.jpg", None]})
    users = pd.DataFrame({"user": [0, 1], "user_id": ["u0", "u1"]})
    return inter, items, users


def test_roundtrip(tmp_path):
    inter, items, users = _tiny()
    write_prepared(tmp_path / "d", inter, items, users, name="t", source="test",
                   modes={"context": {"cardinality": 2, "labels": ["a", "b"]}}, params={}, input_checksum="0")
    ds = load_prepared(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert meta["splits"] == {"train": 2, "valid": 1, "test": 1}
    assert (ds.n_users, ds.n_items, ds.mode_names, ds.mode_cardinalities) == (2, 3, ["context"], [2])
    assert ds.item_train_counts().tolist() == [1, 1, 0]
    assert not list(tmp_path.glob(".d.tmp-*"))


def test_mode_out_of_range_writes_nothing(tmp_path):
    inter, items, users = _tiny()
    with pytest.raises(MrsError, match="context"):
        write_prepared(tmp_path / "d", inter, items, users, name="t", source="test",
                       modes={"context": {"cardinality": 1}}, params={}, input_checksum="0")
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MrsError, match="dataset.json"):
        load_prepared(tmp_path)


def test_atomic_dir_is_world_readable(tmp_path):
    import os
    from mrs.io import atomic_dir
    with atomic_dir(tmp_path / "x") as t:
        (t / "f").write_text("1")
    assert (os.stat(tmp_path / "x").st_mode & 0o777) == 0o777 & ~_umask()


def _umask():
    import os
    m = os.umask(0)
    os.umask(m)
    return m
