"""Join the shards of one extraction (``<store>.shard-k-of-n.<ext>``) into one store.

Shards are chunk-aligned, so the merged store (features, present mask, input checksum) equals
what one unsharded run writes. Shards from different settings, encoders or item lists, a missing
shard, or ranges that do not tile the items are refused.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from mrs.errors import MrsError
from mrs.features.store import open_writer, read_meta, read_store, store_format

SHARD_RE = re.compile(r"^(?P<base>.+)\.shard-(?P<k>\d+)-of-(?P<n>\d+)(?P<suffix>\.h5|\.lmdb)$")


def find_shards(features_dir: Path, name: str) -> list[Path]:
    """All shard stores of ``name`` (e.g. ``text-minilm``) in ``features_dir``, ordered by k."""
    found = []
    for p in features_dir.glob(f"{name}.shard-*-of-*"):
        m = SHARD_RE.match(p.name)
        if m and m["base"] == name:
            found.append((int(m["k"]), p))
    return [p for _, p in sorted(found)]


def merge_shards(shards: list[Path], out: Path | None = None, dtype: str | None = None) -> Path:
    """Merge ``shards`` into ``out`` (default: the shard name without ``.shard-k-of-n``); return ``out``."""
    if not shards:
        raise MrsError("merge: no shard stores given or found")
    metas = [read_meta(p) for p in shards]
    n = None
    by_k = {}
    for p, m in zip(shards, metas):
        sh = str(m.get("shard") or "")
        if "/" not in sh:
            raise MrsError(f"{p}: not a shard (no 'shard' attribute)")
        k, nn = (int(x) for x in sh.split("/"))
        if n is not None and nn != n:
            raise MrsError(f"{p}: shard of {nn}, others are of {n}")
        n = nn
        if k in by_k:
            raise MrsError(f"{p}: shard {k}/{n} given twice ({by_k[k][0]})")
        by_k[k] = (p, m)
    missing = [k for k in range(n) if k not in by_k]
    if missing:
        raise MrsError(f"merge: shards {missing} of {n} are missing (have {sorted(by_k)})")
    first = by_k[0][1]
    for key in ("modality", "encoder", "encoder_version", "items_checksum", "config", "dim", "dtype"):
        for k in range(n):
            if by_k[k][1].get(key) != first.get(key):
                raise MrsError(f"{by_k[k][0]}: {key} differs from shard 0 ({by_k[k][1].get(key)!r} vs {first.get(key)!r})")
    ranges = [json.loads(by_k[k][1]["item_range"]) if isinstance(by_k[k][1]["item_range"], str)
              else by_k[k][1]["item_range"] for k in range(n)]
    for k in range(1, n):
        if ranges[k][0] != ranges[k - 1][1]:
            raise MrsError(f"{by_k[k][0]}: item range {ranges[k]} does not follow shard {k - 1}'s {ranges[k - 1]}")
    if ranges[0][0] != 0:
        raise MrsError(f"{by_k[0][0]}: first shard starts at item {ranges[0][0]}, not 0")
    if out is None:
        m = SHARD_RE.match(by_k[0][0].name)
        out = by_k[0][0].parent / f"{m['base'] if m else 'merged'}{m['suffix'] if m else by_k[0][0].suffix}"
    store_format(out)
    ids_all, parts, digests, n_present = [], [], [], 0
    for k in range(n):
        ids, feats, present, m = read_store(by_k[k][0])
        ids_all += ids
        parts.append((feats, present))
        d = m.get("chunk_digests", [])
        digests += json.loads(d) if isinstance(d, str) else list(d)
    if first.get("n_items_total") not in (None, len(ids_all)):
        raise MrsError(f"merge: shards cover {len(ids_all)} items, expected {first['n_items_total']}")
    meta = {k: v for k, v in first.items() if k not in ("format_version", "dim", "dtype", "n_items", "n_present",
                                                          "input_checksum", "chunk_digests", "shard", "item_range")}
    meta["shard"] = ""
    meta["item_range"] = json.dumps([0, len(ids_all)])
    w = open_writer(out, ids_all, int(first["dim"]), meta, dtype=dtype or first["dtype"])
    row = 0
    for feats, present in parts:
        w.write(row, feats, present)
        row += len(feats)
        n_present += int(present.sum())
    w.close({"input_checksum": hashlib.sha256("\n".join(digests).encode()).hexdigest(),
             "chunk_digests": json.dumps(digests), "n_present": n_present})
    _merge_reports([by_k[k][0] for k in range(n)], out)
    return out


def _merge_reports(shards: list[Path], out: Path) -> None:
    from mrs.features.extract import report_path
    from mrs.io import write_json_atomic

    merged: dict = {"store": str(out), "items": 0, "present": 0, "missing": 0, "problems": {}, "shards": len(shards)}
    for p in shards:
        rp = report_path(p)
        if not rp.is_file():
            continue
        r = json.loads(rp.read_text())
        merged.update({k: r[k] for k in ("modality", "encoder") if k in r})
        for k in ("items", "present", "missing"):
            merged[k] += r.get(k, 0)
        for kind, v in r.get("problems", {}).items():
            agg = merged["problems"].setdefault(kind, {"count": 0, "first_ids": []})
            agg["count"] += v["count"]
            agg["first_ids"] = (agg["first_ids"] + v["first_ids"])[:10]
    write_json_atomic(report_path(out), merged)
