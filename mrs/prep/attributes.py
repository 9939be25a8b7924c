"""Item attributes for ``mrs prepare amazon2014 --attributes FILE``: S3-Rec's ``item2attributes.json``.

The file is one JSON object ``{"item_id": [attribute_id, ...], ...}`` (integer ids as strings,
the same integer item ids as the sequence file); the attributes are the item's Amazon categories
and brand, numbered (no names are published). Each prepared item gets

- ``attributes``: its attribute ids (list of int64), each once, in the file's order, and
- ``text``: the same as tokens, ``"a12 a7 a301"``, so any text encoder can read them too.

Rules (what a researcher pairing a sequence file with its attribute file expects):

- missing file, malformed JSON, a top level that is not an object, an item id that is not an
  integer, an item id given twice (``"7"`` and ``"07"`` are the same item), a value that is not a
  list, an attribute that is not an integer >= 0 (``1.5``, ``"3"``, ``true``, ``-1``): a one-line
  error naming the file (and item). The data are numbers; a wrong value is a wrong file, not noise.
- an item of the attribute file that is not in the sequences: skipped, counted
  (``attributes.items_not_in_sequences``) and warned with examples. An attribute file commonly
  covers the catalogue before k-core filtering, as Amazon's metadata does; but a file sharing no
  item with the sequences is the wrong file and is refused.
- an item of the sequences without attributes: empty ``text`` and ``[]``, counted and warned.
- an attribute repeated within one item (S3-Rec's Sports lists 4,018 such repeats: a category
  reached twice in the category tree) is kept once (counted): the attributes are a set.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.errors import MrsError
from mrs.prep.common import BOM, log


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook``: json keeps the last of two equal keys silently; a repeated item is an error."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _Repeated(k)
        out[k] = v
    return out


class _Repeated(Exception):
    pass


def read_item_attributes(path: Path) -> tuple[dict[int, list[int]], int]:
    """``({item id: [attribute ids, each once]}, attribute repeats dropped)`` of S3-Rec's JSON file."""
    raw = path.read_bytes().removeprefix(BOM)
    try:
        data = json.loads(raw, object_pairs_hook=_unique_keys)
    except _Repeated as e:
        raise MrsError(f"{path}: item {e.args[0]!r} is given twice") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError (a ValueError) names line and column
        raise MrsError(f"{path}: malformed JSON ({str(e).splitlines()[0][:160]})") from None
    if not isinstance(data, dict):
        raise MrsError(f"{path}: expected a JSON object {{item_id: [attribute_id, ...]}}, "
                       f"got a {type(data).__name__}")
    out: dict[int, list[int]] = {}
    repeats = 0
    for key, values in data.items():
        item = _int_id(key)
        if item is None:
            raise MrsError(f"{path}: item id {key!r} is not an integer")
        if item in out:
            raise MrsError(f"{path}: item {item} is given twice (as {key!r} and another spelling)")
        if not isinstance(values, list):
            raise MrsError(f"{path}: item {key!r}: expected a list of attribute ids, got {json.dumps(values)[:40]}")
        for a in values:
            # bool is an int subclass in Python: `true` must not become attribute 1
            if not (type(a) is int and a >= 0):
                raise MrsError(f"{path}: item {key!r}: attribute {json.dumps(a)[:40]} is not an integer >= 0")
        once = list(dict.fromkeys(values))
        repeats += len(values) - len(once)
        out[item] = once
    return out, repeats


def _int_id(key: str) -> int | None:
    """The item id as the sequence reader reads it (``int64`` of the token), or None."""
    try:
        v = int(key.strip())
    except ValueError:
        return None
    return v if -(2 ** 63) <= v < 2 ** 63 else None


def attach_attributes(items: pd.DataFrame, raw_item_ids: np.ndarray, attrs: dict[int, list[int]],
                      repeats: int, path: Path) -> tuple[pd.DataFrame, dict]:
    """``items`` with ``attributes`` and ``text`` filled from ``attrs`` (``read_item_attributes(path)``);
    returns (items, counts for ``dataset.json["attributes"]``).

    ``raw_item_ids`` (int64, one per row of ``items``) are the sequence file's item ids.
    """
    known = set(raw_item_ids.tolist())
    extra = [i for i in attrs if i not in known]
    if attrs and len(extra) == len(attrs):
        raise MrsError(f"{path}: none of its {len(attrs)} items is in the sequences (e.g. item {extra[0]} "
                       f"vs the sequences' {int(raw_item_ids[0])}): is it the attribute file of another dataset?")
    lists = [attrs.get(int(i), []) for i in raw_item_ids]
    n_without = sum(1 for a in lists if not a)
    if extra:
        log.warning("%s: %d items are not in the sequences and are skipped (e.g. %s)", path, len(extra),
                    ", ".join(str(i) for i in extra[:5]))
    if n_without:
        missing = [str(i) for i, a in zip(raw_item_ids, lists) if not a][:5]
        log.warning("%s: %d of %d items of the sequences have no attributes (empty text; e.g. %s)", path,
                    n_without, len(lists), ", ".join(missing))
    if repeats:
        log.info("%s: %d attributes repeated within an item kept once", path, repeats)
    items = items.copy()
    items["attributes"] = pd.Series([np.asarray(a, dtype=np.int64) for a in lists], index=items.index,
                                    dtype=object)
    items["text"] = [" ".join(f"a{a}" for a in lst) for lst in lists]
    n_with = len(lists) - n_without
    counts = {"file": path.name, "items_with_attributes": n_with, "items_without_attributes": n_without,
              "items_not_in_sequences": len(extra), "distinct_attributes": len({a for lst in lists for a in lst}),
              "mean_per_item": round(sum(map(len, lists)) / max(n_with, 1), 4),
              "repeats_dropped": repeats}
    return items, counts
