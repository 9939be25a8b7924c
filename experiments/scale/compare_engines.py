"""``mrs prepare amazon2023`` with ``engine=duckdb`` and ``engine=numpy`` on one reviews file: are the
prepared datasets identical? Prints the sizes and "identical" (or the first difference).

    python experiments/scale/compare_engines.py REVIEWS.jsonl WORKDIR [KEY=INT ...]

``KEY=INT``: integer config keys for both (e.g. ``kcore=5``).
"""
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from mrs.data.prepared import load_prepared
from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023

if __name__ == "__main__":
    reviews, work = sys.argv[1], Path(sys.argv[2])
    kw = {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    outs = {}
    for engine in ("duckdb", "numpy"):
        out = work / f"out_{engine}"
        shutil.rmtree(out, ignore_errors=True)
        outs[engine] = load_prepared(prepare_amazon2023(Amazon2023Config(reviews=reviews, out=str(out), engine=engine, **kw)))
    a, b = outs["duckdb"], outs["numpy"]
    for part in ("interactions", "users", "items"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    for m in (a.meta, b.meta):
        m["params"].pop("engine"), m["params"].pop("out")
    assert a.meta == b.meta, "dataset.json differs"
    print(json.dumps({k: a.meta[k] for k in ("n_users", "n_items", "n_interactions", "splits",
                                              "repeated_pairs_dropped")}), "identical")
    for out in outs.values():
        shutil.rmtree(out.root, ignore_errors=True)
