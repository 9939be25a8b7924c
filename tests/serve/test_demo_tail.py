"""``mrs demo`` serves the variant that is best on *validation* (the test split never picks)."""
from __future__ import annotations

import json

import pytest

from mrs.demo import best_variant
from mrs.errors import MrsError


def test_best_variant_is_chosen_on_validation_not_test(tmp_path):
    for name, valid, test in [("mf", 0.30, 0.50), ("lightgcn+cp", 0.40, 0.10), ("freedom", 0.35, 0.90)]:
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"valid": {"all": {"recall@20": valid}},
                                                    "test": {"all": {"recall@20": test}}}))
    assert best_variant(tmp_path).name == "lightgcn+cp"
    with pytest.raises(MrsError, match="no finished variant"):
        best_variant(tmp_path / "empty")


def test_best_variant_skips_a_baseline_that_export_cannot_serve(tmp_path):
    """EASE can be best on validation but is no factor model: the demo exports the best servable run."""
    from mrs.config import save_config
    from mrs.train.config import load_train_config

    for name, valid, enc in [("ease", 0.50, "ease"), ("mf", 0.30, "mf"), ("lightgcn", 0.40, "lightgcn")]:
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        save_config(load_train_config(None, [f"model.encoder={enc}"]), d / "config.yaml")
        (d / "metrics.json").write_text(json.dumps({"valid": {"all": {"recall@20": valid}}}))
    assert best_variant(tmp_path).name == "lightgcn"
