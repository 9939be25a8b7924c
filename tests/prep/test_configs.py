"""Every configs/datasets/*.yaml is a valid config for its source; every key is settable."""
from __future__ import annotations

from pathlib import Path

import pytest

from mrs.config import load_config, valid_keys
from mrs.errors import MrsError
from mrs.prep.amazon2014 import Amazon2014Config
from mrs.prep.amazon2023 import Amazon2023Config
from mrs.prep.hm import HMConfig
from mrs.prep.images import DownloadConfig
from mrs.prep.mmrec import MMRecConfig
from mrs.prep.recbole import RecBoleConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "datasets"
CLASSES = {"hm": HMConfig, "amazon2023": Amazon2023Config, "amazon2014": Amazon2014Config,
           "mmrec": MMRecConfig, "recbole": RecBoleConfig}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_dataset_yaml_loads(path):
    cls = CLASSES[path.stem.split("_")[0]]
    cfg = load_config(cls, path)
    assert isinstance(cfg, cls)


@pytest.mark.parametrize("cls", [HMConfig, Amazon2023Config, Amazon2014Config, DownloadConfig])
def test_unknown_key_and_bad_choice_rejected(cls):
    assert len(valid_keys(cls)) >= 5
    with pytest.raises(MrsError, match="unknown config key 'nope'"):
        load_config(cls, overrides=["nope=1"])


def test_bad_choice_names_key():
    with pytest.raises(MrsError, match="config key 'time_mode'"):
        load_config(HMConfig, overrides=["time_mode=fortnight"])
