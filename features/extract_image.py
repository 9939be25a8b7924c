"""Extract image features: ``python features/extract_image.py --dataset DIR [--image-root DIR] [--encoder NAME] [--store h5|lmdb]``.

A thin entry point; the same as ``mrs features image``.
"""
import sys

from mrs.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", "image", *sys.argv[1:]]))
