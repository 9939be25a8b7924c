"""Whether two prepared datasets are the same: interactions, users and items parquet equal column by
column (values, whatever the string type), and dataset.json equal but for ``params`` (the run's
own config: out, engine, memory_mb).

    python experiments/scale/same_prepared.py REF_DIR NEW_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq


def main(ref: Path, new: Path) -> int:
    same = True
    for name in ("interactions", "users", "items"):
        a, b = pq.read_table(ref / f"{name}.parquet"), pq.read_table(new / f"{name}.parquet")
        cols = a.column_names == b.column_names
        # values compared as the reference's type (pandas writes large_string where DuckDB writes string)
        eq = cols and a.num_rows == b.num_rows and all(a[c].equals(b[c].cast(a[c].type))
                                                       for c in a.column_names)
        print(f"{name}: {a.num_rows} vs {b.num_rows} rows, columns {'same' if cols else 'differ'}, "
              f"values {'identical' if eq else 'DIFFER'}")
        same &= eq
        del a, b
    ja, jb = (json.loads((d / "dataset.json").read_text()) for d in (ref, new))
    for j in (ja, jb):
        j.pop("params", None)
    eq = ja == jb
    differ = sorted(k for k in ja.keys() | jb.keys() if ja.get(k) != jb.get(k))
    print(f"dataset.json (without params): {'identical' if eq else f'DIFFER in {differ}'}")
    return 0 if same and eq else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
