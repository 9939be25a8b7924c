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
