"""Issue 23 §7: what ``mrs features text --encoder tfidf`` writes, training must accept. Few
texts used to give a dim-1 store with non-unit rows, and a text whose words no other item has
(``min_df=2``) a zero row marked present; ``mrs train`` then called the store damaged."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from mrs.train.data import load_feature_stores_with_present
from tests.features.conftest import make_dataset


def _features_then_load_as_training_does(root, *argv):
    assert main(["features", "text", "--dataset", str(root), "--encoder", "tfidf", "--no-progress", *argv]) == 0
    feats, present = load_feature_stores_with_present(load_prepared(root), ["text-tfidf"])
    return feats["text-tfidf"].numpy(), present["text-tfidf"].numpy()


def test_few_texts_give_a_rank_dim_store_with_unit_rows_and_a_warning(tmp_path, caplog):
    root = make_dataset(tmp_path / "d", ["a", "b", "c"], texts=["red shoe", "blue hat", "green sock"])
    with caplog.at_level(logging.WARNING):
        x, present = _features_then_load_as_training_does(root)
    assert present.all() and x.shape == (3, 3)          # the rank, not 1 and not 256
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=2e-2)
    assert "dim 3 < the requested 256: the TF-IDF matrix of 3 texts x 9 terms has rank 3" in caplog.text


@pytest.mark.parametrize("dim", ["256", "4"])
def test_an_item_with_no_shared_word_is_absent_not_a_zero_row(tmp_path, dim, capsys):
    texts = [f"common word{k % 6} shared{k % 5} thing" for k in range(30)] + ["zebra xylophone quokka", ""]
    root = make_dataset(tmp_path / "d", [f"i{k}" for k in range(32)], texts=texts)
    x, present = _features_then_load_as_training_does(root, "--dim", dim)
    assert present.tolist() == [True] * 30 + [False, False]
    assert np.allclose(np.linalg.norm(x[present], axis=1), 1.0, atol=2e-2)
    out = capsys.readouterr().out
    assert "30 present, 2 missing" in out and "no_usable_terms: 1 (first: i30)" in out
    assert "empty_text: 1 (first: i31)" in out
