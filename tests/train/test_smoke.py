"""Every encoder x modes x fusion trains one epoch end to end (RecBole's smoke-test habit)."""
from __future__ import annotations

import json
import math

import pytest

from mrs.models import ENCODERS, FUSIONS
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train
from tests.train.conftest import tiny_overrides


@pytest.mark.parametrize("fusion", FUSIONS.names())
@pytest.mark.parametrize("modes", [False, True])
@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_every_model_trains_one_epoch(tiny_data, tmp_path, encoder, modes, fusion):
    feats = "[text-synth, image-synth]" if fusion != "none" else "[]"
    cfg = load_train_config(None, tiny_overrides(
        tiny_data, model__encoder=encoder, model__modes=modes, model__fusion=fusion,
        data__features=feats, eval__bootstrap=0))
    m = run_train(cfg, tmp_path / "run")
    assert m["best_epoch"] == 1 and len(m["history"]) == 1
    assert math.isfinite(m["history"][0]["loss"])
    assert set(m["test"]) == {"all", "tail", "head", "cold"}
    assert 0.0 <= m["test"]["all"]["recall@20"] <= 1.0
    if fusion == "early":  # learned α over the two modalities, softmax -> sums to one
        alpha = m["alpha"]
        assert set(alpha) >= {"text-synth", "image-synth"}
        assert abs(sum(alpha[k] for k in ("text-synth", "image-synth")) - 1) < 1e-5
        assert "alpha/text-synth" in m["history"][0]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test"] == m["test"]
