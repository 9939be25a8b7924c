"""Prepare Amazon Reviews 2023: ``python data_prep/prepare_amazon2023.py [--reviews F] [--meta F] [--out DIR]``.

Wraps ``mrs prepare amazon2023 --config configs/datasets/amazon2023_all_beauty.yaml`` (the official
All_Beauty trio); for a raw dump pass ``--config configs/datasets/amazon2023_raw.yaml --reviews ...``.
"""
import sys
from pathlib import Path

from mrs.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "datasets" / "amazon2023_all_beauty.yaml"

if __name__ == "__main__":
    sys.exit(main(["prepare", "amazon2023", "--config", str(CONFIG), *sys.argv[1:]]))
