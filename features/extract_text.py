"""Extract text features: ``python features/extract_text.py --dataset DIR [--encoder NAME] [--store h5|lmdb]``.

A thin entry point; the same as ``mrs features text``.
"""
import sys

from mrs.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", "text", *sys.argv[1:]]))
