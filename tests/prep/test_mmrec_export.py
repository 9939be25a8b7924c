"""``mrs.prep.mmrec_export``: a prepared dataset written as MMRec's folder, and the input check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrs.data.prepared import items_checksum, write_prepared
from mrs.errors import MrsError
from mrs.features.store import write_store
from mrs.prep.mmrec import MMRecConfig, prepare_mmrec
from mrs.prep.mmrec_export import check_export, export_mmrec

from tests.prep.test_mmrec_recbole import mmrec_dir

STORES = {"image": "image-mmrec", "text": "text-mmrec"}


def prepared(tmp_path):
    d = mmrec_dir(tmp_path)
    return d, prepare_mmrec(MMRecConfig(dir=str(d), out=str(tmp_path / "prep")))


def test_round_trip_is_mmrec_folder_back(tmp_path):
    d, prep = prepared(tmp_path)
    out = tmp_path / "mm" / "baby"
    export_mmrec(prep, out, "baby", STORES)  # an earlier export, which MMRec then ran on
    stale = ["mm_adj_freedomdsp_10_1.pt", "image_adj_10.pt"]  # MMRec's kNN caches of older features
    for f in stale:
        (out / f).write_bytes(b"x")
    digests = export_mmrec(prep, out, "baby", STORES)
    assert not any((out / f).exists() for f in stale)
    assert sorted(digests) == ["baby.inter", "image_feat.npy", "text_feat.npy"]
    src = pd.read_csv(d / "baby.inter", sep="\t")
    got = pd.read_csv(out / "baby.inter", sep="\t")
    assert list(got.columns) == ["userID", "itemID", "x_label"]
    assert got.to_numpy().tolist() == src[["userID", "itemID", "x_label"]].to_numpy().tolist()
    for f in ("image_feat.npy", "text_feat.npy"):
        assert np.array_equal(np.load(out / f), np.load(d / f))
    # and back again: prepare mmrec on the export gives the same dataset
    back = prepare_mmrec(MMRecConfig(dir=str(out), out=str(tmp_path / "back"), name="baby"))
    assert check_export(back, out, "baby", STORES) == digests


def test_changed_row_or_feature_is_refused(tmp_path):
    _, prep = prepared(tmp_path)
    out = tmp_path / "mm" / "baby"
    export_mmrec(prep, out, "baby", STORES)
    check_export(prep, out, "baby", STORES)
    inter = (out / "baby.inter").read_text().splitlines()
    good = list(inter)
    inter[3] = inter[3][:-1] + ("0" if inter[3][-1] != "0" else "1")  # one row's x_label
    (out / "baby.inter").write_text("\n".join(inter) + "\n")
    with pytest.raises(MrsError, match=r"baby.inter differs from what mrs reads .*inputs differ"):
        check_export(prep, out, "baby", STORES)
    (out / "baby.inter").write_text("\n".join(good) + "\n")
    x = np.load(out / "text_feat.npy")
    x[2, 0] += 1e-3
    np.save(out / "text_feat.npy", x)
    with pytest.raises(MrsError, match=r"text_feat.npy differs from what mrs reads"):
        check_export(prep, out, "baby", STORES)
    with pytest.raises(MrsError, match=r"image_feat.npy is there but mrs reads no such modality"):
        check_export(prep, out, "baby", {"text": "text-mmrec"})


def test_missing_rows_are_filled_as_mrs_reads_them(tmp_path):
    _, prep = prepared(tmp_path)
    ids = [str(i) for i in range(4)]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    present = np.array([True, False, True, True])
    write_store(prep / "features" / "text-part.h5", ids, x, present,
                {"modality": "text", "encoder": "t", "encoder_version": "1", "normalisation": "none",
                 "items_checksum": items_checksum(pd.Series(ids))}, dtype="float32")
    out = tmp_path / "mm" / "baby"
    export_mmrec(prep, out, "baby", {"text": "text-part"})
    got = np.load(out / "text_feat.npy")
    assert np.array_equal(got[1], x[present].mean(0)) and np.array_equal(got[[0, 2, 3]], x[[0, 2, 3]])
    assert not (out / "image_feat.npy").exists()
    check_export(prep, out, "baby", {"text": "text-part"})


def test_item_without_interaction_is_refused(tmp_path):
    inter = pd.DataFrame({"user": [0, 0, 1, 1], "item": [0, 1, 1, 2], "split": np.array([0, 2, 0, 1], np.int8)})
    items = pd.DataFrame({"item": np.arange(4), "item_id": list("abcd"), "text": "",
                          "image": pd.Series([None] * 4, dtype=object)})  # item 3: no interaction
    users = pd.DataFrame({"user": [0, 1], "user_id": ["u", "v"]})
    prep = write_prepared(tmp_path / "prep", inter, items, users, name="t", source="test", modes={},
                          params={}, input_checksum="x")
    with pytest.raises(MrsError, match=r"4 items but the last item with an interaction is 2"):
        export_mmrec(prep, tmp_path / "mm" / "t", "t", {})


def test_a_folder_of_other_files_is_refused_and_left_alone(tmp_path):
    """MMRec's own dataset folder (or any folder the exporter did not write) is never overwritten."""
    d, prep = prepared(tmp_path)
    before = {f.name: f.read_bytes() for f in d.iterdir() if f.is_file()}
    with pytest.raises(MrsError, match=r"holds files this exporter did not write .*new or empty folder") as e:
        export_mmrec(prep, d, "baby", STORES)
    assert "\n" not in str(e.value)
    assert {f.name: f.read_bytes() for f in d.iterdir() if f.is_file()} == before
