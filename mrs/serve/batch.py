"""Batch recommendations to a file: csv, JSON lines, or the H&M competition's submission format.

``hm-kaggle``: the header ``customer_id,prediction``, then one row per customer (each customer of
the list once, in its order), ``prediction`` = twelve space-separated article ids zero-padded to
ten digits. A list shorter than twelve (a tiny catalogue, or ``exclude_seen``) is completed
with the context's most popular items, so every row has exactly twelve.

A user the model does not know gets the context's popular items (the same row for all of them):
how many did is logged, and a warning says so when it is most of the file (ids from another
dataset, or another id format). A file with no user id is an error, not a header-only output.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mrs.errors import MrsError
from mrs.io import atomic_path

HM_K = 12
log = logging.getLogger(__name__)


def read_user_list(path: Path) -> list[str]:
    """Raw user ids: a csv with a ``customer_id`` or ``user_id`` column (H&M's customers.csv),
    else one id per line. Duplicates are dropped (first one kept)."""
    import pandas as pd

    if not Path(path).is_file():
        raise MrsError(f"{path}: not found")
    with open(path) as f:
        first = f.readline().strip()
    cols = [c.strip() for c in first.split(",")]
    col = next((c for c in ("customer_id", "user_id") if c in cols), None)
    if col is not None:
        ids = pd.read_csv(path, usecols=[col], dtype={col: str})[col]
        if ids.isna().any():
            raise MrsError(f"{path}: row {int(ids.isna().to_numpy().argmax()) + 2}: empty {col}")
    else:
        if "," in first:
            raise MrsError(f"{path}: a csv needs a 'customer_id' or 'user_id' column (header: {first!r})")
        ids = pd.Series([x.strip() for x in Path(path).read_text().splitlines() if x.strip()])
    if len(ids) == 0:
        raise MrsError(f"{path}: no user ids" + (f" (only the header, column {col!r})" if col else " (empty file)"))
    return list(dict.fromkeys(ids.tolist()))


def check_batch_out(out: Path, users: Path, force: bool) -> None:
    """Before any work: ``out`` is not a directory, not the ``--users`` input, and is only
    replaced with ``force``."""
    out = Path(out)
    if out.is_dir():
        raise MrsError(f"--out {out}: is a directory; give a file path")
    if out.exists() and Path(users).exists() and os.path.samefile(out, users):  # links too
        raise MrsError(f"--out {out}: is the --users input; write the recommendations elsewhere")
    if out.exists() and not force:
        raise MrsError(f"--out {out}: already exists; pass --force to replace it")


def write_batch(service, users: list[str], out: Path, modes: dict, k: int, exclude_seen: bool,
                fmt: str = "csv", batch_size: int = 512) -> int:
    """Recommend for every user (progress bar) and write ``out`` atomically; returns the row count."""
    if fmt == "hm-kaggle":
        k = HM_K
    service.check_k(k)
    pop_ids, n_fallback = None, 0
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        f.write({"csv": "user_id,items,scores\n", "hm-kaggle": "customer_id,prediction\n", "jsonl": ""}[fmt])
        for start in tqdm(range(0, len(users), batch_size), desc="recommend", unit="batch",
                          total=(len(users) + batch_size - 1) // batch_size, dynamic_ncols=True):
            chunk = users[start:start + batch_size]
            for r in service.recommend_batch(chunk, modes, k, exclude_seen):
                n_fallback += r["fallback"] is not None
                ids = [x["id"] for x in r["items"]]
                if fmt == "jsonl":
                    f.write(json.dumps(r) + "\n")
                elif fmt == "csv":
                    scores = " ".join(f"{x['score']:.6g}" for x in r["items"])
                    f.write(f"{r['user']},{' '.join(ids)},{scores}\n")
                else:
                    if len(ids) < HM_K:
                        if pop_ids is None:
                            labels = service.model.resolve_modes(modes)
                            pop_ids = [service.model.item_id(int(i)) for i in service.model.popular(labels)[:4 * HM_K]]
                        ids += [x for x in pop_ids if x not in ids][:HM_K - len(ids)]
                    f.write(f"{r['user']},{' '.join(hm_article_id(x) for x in ids)}\n")
    report_fallback(len(users), n_fallback)
    return len(users)


def report_fallback(n: int, n_fallback: int) -> None:
    """Log how many users got the popular-items fallback; warn when it is most of them."""
    log.info("%d of %d users unknown to the model: popular-items fallback", n_fallback, n)
    if n_fallback == n:
        log.warning("every one of the %d users is unknown to the model: every row is the same "
                    "popular-items list (ids from another dataset, or another id format?)", n)
    elif 2 * n_fallback > n:
        log.warning("%d of %d users (%.0f%%) are unknown to the model: their rows are the same "
                    "popular-items list", n_fallback, n, 100 * n_fallback / n)


def hm_article_id(raw: str) -> str:
    """H&M's article id as the competition writes it: ten digits, zero-padded."""
    if not raw.isdigit() or len(raw) > 10:
        raise MrsError(f"item id {raw!r}: not an H&M article id (at most ten digits)")
    return raw.zfill(10)
