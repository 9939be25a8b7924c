"""Prepare H&M: ``python data_prep/prepare_hm.py [--raw DIR] [--out DIR] [--set key=value ...]``.

A thin wrapper around ``mrs prepare hm --config configs/datasets/hm.yaml``; any extra argument is
passed through (so ``--set last_weeks=12`` works here too).
"""
import sys
from pathlib import Path

from mrs.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "datasets" / "hm.yaml"

if __name__ == "__main__":
    sys.exit(main(["prepare", "hm", "--config", str(CONFIG), *sys.argv[1:]]))
