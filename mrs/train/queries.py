"""The two query kinds of the final evaluation, and the per-query values each run saves.

- ``user_mode``: one query per held-out ``(user, context, time)``: the contextual task.
- ``user``: one query per user (the literature's protocol). The context of the request is
  unknown, so a CP model scores with the request's time (the latest held-out interaction's
  value of every mode in ``eval.request_modes``) and, for every other mode, the train-frequency
  expectation ``Σ_c p(c)·C[c]``, which by CP's multilinearity is exactly the expected score over
  contexts (:meth:`mrs.models.cp.CPScorer.query`).

Every run writes ``per_query.parquet`` (long format: ``query_kind, split, slice, row, user``
and one column per metric; ``row`` indexes the evaluator's query list, identified by
``queries_sha1`` in ``metrics.json``), so any two runs on the same queries can be compared
later with a paired test (``mrs.eval.paired_diff_ci``; ``mrs compare`` does it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mrs.eval import EvalResult
from mrs.io import atomic_path

KINDS = ("user_mode", "user")


def user_query_mode_weights(mode_names: list[str], train_modes: Tensor, cardinalities: list[int],
                            request_modes: list[str]) -> list[Tensor | None]:
    """Per mode: ``None`` (use the request's value) for ``request_modes``, else the train
    frequencies ``p (n_j,)``."""
    out: list[Tensor | None] = []
    for j, (name, card) in enumerate(zip(mode_names, cardinalities)):
        if name in request_modes:
            out.append(None)
        else:
            counts = torch.bincount(train_modes[:, j].cpu().long(), minlength=card).double()
            out.append((counts / counts.sum().clamp(min=1)).float())
    return out


def other_kinds(primary: str, has_modes: bool, both: bool) -> list[str]:
    """Query kinds to evaluate besides ``primary``: the other one when the data has modes."""
    return [k for k in KINDS if k != primary] if (both and has_modes) else []


def by_query_json(results: dict[tuple[str, str], EvalResult]) -> dict:
    """``{kind: {"test": metrics, "valid": ..., "ci": {split: ...}, "n_queries": {...},
    "queries_sha1": {...}}}`` for metrics.json."""
    out: dict = {}
    for (kind, split), r in results.items():
        d = out.setdefault(kind, {"ci": {}, "n_queries": {}, "queries_sha1": {}})
        d[split] = r.metrics
        d["ci"][split] = r.ci
        d["n_queries"][split] = r.n_queries
        d["queries_sha1"][split] = r.info.get("queries_sha1")
    return out


def per_query_frame(results: dict[tuple[str, str], EvalResult], users: dict[tuple[str, str], np.ndarray]
                    ) -> pd.DataFrame:
    """Long per-query table over every (kind, split, slice)."""
    frames = []
    for (kind, split), r in results.items():
        for s, vals in r.per_query.items():
            rows = r.query_rows[s]
            frames.append(pd.DataFrame({"query_kind": kind, "split": split, "slice": s,
                                        "row": rows.astype(np.int64), "user": users[(kind, split)][rows],
                                        **{k: v.astype(np.float32) for k, v in vals.items()}}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_per_query(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def result_from_frame(frame: pd.DataFrame, kind: str, split: str, sha1: str | None) -> EvalResult:
    """An :class:`EvalResult` holding only per-query values (enough for ``paired_diff_ci``)."""
    sub = frame[(frame.query_kind == kind) & (frame.split == split)]
    per_query, rows = {}, {}
    metric_cols = [c for c in frame.columns if "@" in c]
    for s, g in sub.groupby("slice", sort=False):
        g = g.sort_values("row")
        rows[s] = g["row"].to_numpy()
        per_query[s] = {k: g[k].to_numpy(np.float64) for k in metric_cols}
    return EvalResult(split, {}, {}, {s: len(r) for s, r in rows.items()}, {"queries_sha1": sha1},
                      per_query=per_query, query_rows=rows)
