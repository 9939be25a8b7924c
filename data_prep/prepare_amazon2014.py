"""Prepare Amazon 2014 Sports with MMRec's split: ``python data_prep/prepare_amazon2014.py [--out DIR]``.

Wraps ``mrs prepare amazon2014 --config configs/datasets/amazon2014_sports.yaml``; extra arguments
pass through (``--config configs/datasets/amazon2014_beauty.yaml`` later on the line wins).
"""
import sys
from pathlib import Path

from mrs.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "datasets" / "amazon2014_sports.yaml"

if __name__ == "__main__":
    sys.exit(main(["prepare", "amazon2014", "--config", str(CONFIG), *sys.argv[1:]]))
