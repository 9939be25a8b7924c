"""``experiments/fidelity_faerec/export.py``: an mrs feature store written as FAERec's
``itm_emb_np.npy`` (row k-1 = item k of the sequence file) and the check run before training."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from mrs.errors import MrsError
from mrs.train.data import load_feature_stores

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "fidelity_faerec" / "export.py"
_spec = importlib.util.spec_from_file_location("fidelity_faerec_export", _PATH)
exp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exp)

# first appearance 3 1 2 5 4: mrs's item order is not the id order, so a plain copy would misalign
SEQ = "1 3 1 2\n2 5 4 1 3\n3 2 5 4 3\n"
ATTRS = '{"1": [1, 2], "2": [2, 3], "3": [4], "4": [1, 5], "5": [3, 6, 2]}'


def _dataset(tmp_path, seq: str = SEQ) -> Path:
    (tmp_path / "seq.txt").write_text(seq)
    (tmp_path / "attr.json").write_text(ATTRS)
    d = tmp_path / "d"
    assert main(["prepare", "amazon2014", "--sequences", str(tmp_path / "seq.txt"), "--attributes",
                 str(tmp_path / "attr.json"), "--out", str(d), "--split", "leave-last-out"]) == 0
    assert main(["features", "attributes", "--dataset", str(d), "--dim", "3", "--dtype", "float32"]) == 0
    return d


def test_rows_are_the_mrs_store_in_faerec_id_order(tmp_path):
    d = _dataset(tmp_path)
    npy = tmp_path / "llm_emb" / "Beauty" / "itm_emb_np.npy"
    digest = exp.export_faerec(d, "attributes-svd", npy)
    ds = load_prepared(d)
    mrs_x = load_feature_stores(ds, ["attributes-svd"])["attributes-svd"].numpy()
    table = exp.faerec_reads(npy)                       # as FAERec's llm_embeddings builds it
    assert table.shape == (5 + 2, mrs_x.shape[1])
    assert not table[0].any() and not table[-1].any()   # padding rows
    assert ds.items.item_id.tolist()[:2] == ["3", "1"]  # the order really differs
    for i, raw in enumerate(ds.items.item_id.astype(int)):
        assert np.array_equal(table[raw], mrs_x[i])
    assert exp.check_faerec_export(d, "attributes-svd", npy, tmp_path / "seq.txt") == digest


def test_wrong_row_count_or_value_is_refused(tmp_path):
    d = _dataset(tmp_path)
    npy = tmp_path / "itm_emb_np.npy"
    exp.export_faerec(d, "attributes-svd", npy)
    x = np.load(npy)
    np.save(npy, x[:-1])
    with pytest.raises(MrsError, match=r"^\S+itm_emb_np.npy: 4 item rows, but \S+seq.txt has items 1..5; "
                                       r"FAERec would misalign its table: re-export \(run.py --prepare\)$"):
        exp.check_faerec_export(d, "attributes-svd", npy, tmp_path / "seq.txt")
    x[2, 0] += 1e-3
    np.save(npy, x)
    with pytest.raises(MrsError, match=r"differs from mrs's store 'attributes-svd' .*inputs differ") as e:
        exp.check_faerec_export(d, "attributes-svd", npy, tmp_path / "seq.txt")
    assert "\n" not in str(e.value)


def test_item_ids_with_a_gap_are_refused(tmp_path):
    d = _dataset(tmp_path, "1 3 1 2\n2 6 4 1 3\n3 2 6 4 3\n")   # no item 5: FAERec's row 5 would be item 6
    with pytest.raises(MrsError, match=r"item ids are not exactly 1..5 \(max 6\)"):
        exp.export_faerec(d, "attributes-svd", tmp_path / "x.npy")
    assert not (tmp_path / "x.npy").exists()
