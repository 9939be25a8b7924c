"""Join shard stores: ``python features/merge.py --dataset DIR --name text-minilm`` (= ``mrs features merge``)."""
import sys

from mrs.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", "merge", *sys.argv[1:]]))
