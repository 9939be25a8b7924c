"""experiments/fidelity/run.py: every MODELS row's mrs side is a valid mrs train config.

A misspelt ``model.options.<name>.*`` key or a value out of range would otherwise surface only
after the MMRec side of a long run; here each row's overrides (as ``mrs_args`` builds them) go
through the real config loader and the encoder's own options check.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from mrs.models.base import ENCODERS
from mrs.train.config import load_train_config

RUN = Path(__file__).resolve().parents[2] / "experiments" / "fidelity" / "run.py"


def _run_module():
    spec = importlib.util.spec_from_file_location("fidelity_run", RUN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its @dataclass looks the module up
    spec.loader.exec_module(mod)
    return mod


RUN_MOD = _run_module()


@pytest.mark.parametrize("name", sorted(RUN_MOD.MODELS))
def test_models_row_is_a_valid_mrs_config(name: str) -> None:
    a = argparse.Namespace(data="data", text="attributes-svd", image="image-attributes-svd", epochs=3,
                           stopping_step=20, batch_size=2048, lr=1e-3, eval_every=1)
    args = RUN_MOD.mrs_args(a, RUN_MOD.MODELS[name], seed=0)
    overrides = [args[i + 1] for i in range(0, len(args), 2)]
    assert all(args[i] == "--set" for i in range(0, len(args), 2))
    cfg = load_train_config(overrides=overrides)
    assert cfg.model.encoder == RUN_MOD.MODELS[name].mrs["model.encoder"]
    ENCODERS.get(cfg.model.encoder).options(cfg.model)  # unknown option keys / bad values raise


def test_new_rows_map_the_mmrec_values() -> None:
    """The values picked from MMRec's YAML grids are the same on both sides."""
    m = RUN_MOD.MODELS
    assert m["mmgcn"].mmrec_cfg["reg_weight"] == m["mmgcn"].mrs["model.options.mmgcn.reg_weight"]
    assert m["grcn"].mmrec_cfg["reg_weight"] == m["grcn"].mrs["model.options.grcn.reg_weight"]
    assert m["mgcn"].mmrec_cfg["cl_loss"] == m["mgcn"].mrs["model.options.mgcn.cl_loss"]
    for key in ("n_mm_layers", "n_hyper_layer", "hyper_num", "keep_rate", "alpha", "cl_weight", "reg_weight"):
        assert m["lgmrec"].mmrec_cfg[key] == m["lgmrec"].mrs[f"model.options.lgmrec.{key}"], key
