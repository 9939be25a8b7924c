"""``mrs compare``'s tables: both query kinds, mean ± sd over seeds, paired differences to a baseline.

For every query kind a run evaluated (``user_mode``: per (user, context, time), the contextual
task; ``user``: per user, the literature's protocol) and every reported slice x metric:

- each variant's value: the mean over seeds (``± sd`` across seeds when there are several), and
  a 95% bootstrap interval over queries of the per-query values averaged over seeds;
- its difference to the baseline variant (default ``mf``) with a **paired** bootstrap interval
  (:func:`mrs.eval.paired_diff_ci`) over the same queries: per-query differences (averaged over
  seeds), resampled together, so between-query variance cancels. An interval that excludes 0 is
  a difference the queries support; two overlapping marginal intervals say nothing.

Per-query values come from each run's ``per_query.parquet``; runs without one (older) get the
marginal figures only.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.eval import paired_diff_ci
from mrs.eval.bootstrap import bootstrap_ci
from mrs.io import write_text_atomic

SLICES = ("all", "tail", "head", "cold", "cold_user", "tail_pop", "tail_user")  # those a run has (eval.slices)
KIND_TITLES = {"user_mode": "per-(user, context, time) queries: the contextual task",
               "user": "per-user queries: the literature's protocol (CP: the request's time, "
                       "expected context Σ_c p(c)·C[c])"}


class RunSet:
    """One variant's runs (one per seed): metrics.json and per-query values."""

    def __init__(self, name: str, run_dirs: list[Path]):
        self.name = name
        self.metrics = [json.loads((d / "metrics.json").read_text()) for d in run_dirs]
        self.frames = [pd.read_parquet(d / "per_query.parquet") if (d / "per_query.parquet").is_file() else None
                       for d in run_dirs]

    def kinds(self, split: str) -> dict[str, list[dict]]:
        """``{kind: [per-seed {"metrics", "ci", "n_queries", "sha1"}]}``."""
        out: dict[str, list[dict]] = {}
        for m in self.metrics:
            by = m.get("by_query") or {}
            if not by:  # an older run: its one query kind
                kind = m.get("eval_info", {}).get(split, {}).get("query", "user")
                by = {kind: {split: m[split], "ci": m.get("ci", {}), "n_queries": m.get("n_queries", {}),
                             "queries_sha1": {split: m.get("eval_info", {}).get(split, {}).get("queries_sha1")}}}
            for kind, d in by.items():
                if split in d:
                    out.setdefault(kind, []).append({"metrics": d[split], "ci": d["ci"].get(split, {}),
                                                     "n_queries": d["n_queries"].get(split, {}),
                                                     "sha1": d.get("queries_sha1", {}).get(split)})
        return out

    def per_query(self, kind: str, split: str, sha1: str | None):
        """Per-seed :class:`EvalResult` of per-query values, or ``None`` when a seed lacks them."""
        from mrs.train.queries import result_from_frame

        if any(f is None for f in self.frames):
            return None
        return [result_from_frame(f, kind, split, sha1) for f in self.frames]


def seed_mean(results: list, slice_: str, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(query rows, per-query value averaged over seeds) of one slice x metric."""
    rows = results[0].query_rows.get(slice_)
    if rows is None or any(not np.array_equal(r.query_rows.get(slice_), rows) for r in results):
        return None
    return rows, np.mean([r.per_query[slice_][key] for r in results], axis=0)


def averaged(results: list):
    """One :class:`EvalResult` whose per-query values are the seed means (for paired tests)."""
    from mrs.eval import EvalResult

    r0 = results[0]
    pq = {s: {k: np.mean([r.per_query[s][k] for r in results], axis=0) for k in r0.per_query[s]}
          for s in r0.per_query}
    return EvalResult(r0.split, {}, {}, r0.n_queries, dict(r0.info), per_query=pq, query_rows=r0.query_rows)


def fmt(v: float | None, signed: bool = False) -> str:
    return "–" if v is None or not np.isfinite(v) else (f"{v:+.4f}" if signed else f"{v:.4f}")


def write_report(runs: dict[str, list[Path]], report: list[str], out: Path, baseline: str = "mf",
                 n_boot: int = 1000, seed: int = 0) -> str:
    """``compare.md`` and ``compare.csv`` (long: one row per variant x kind x slice x metric)."""
    sets = {n: RunSet(n, dirs) for n, dirs in runs.items()}
    split = "test" if all("test" in m for s in sets.values() for m in s.metrics) else "valid"
    n_seeds = max(len(d) for d in runs.values())
    base = baseline if baseline in sets else next(iter(sets))
    md = [f"Split: **{split}**; " + (f"{n_seeds} seeds: mean ± sd across seeds, " if n_seeds > 1 else "")
          + "95% bootstrap intervals over queries in brackets"
          + (" (of the per-query values averaged over seeds)" if n_seeds > 1 else "")
          + f"; Δ = difference to **{base}** with a paired bootstrap interval over the same queries.", ""]
    csv_rows = []
    kinds = [k for k in ("user_mode", "user") if any(k in s.kinds(split) for s in sets.values())]
    table_rows: dict[str, dict] = {}
    for kind in kinds:
        per_variant = {n: s.kinds(split).get(kind) for n, s in sets.items()}
        first = next(v for v in per_variant.values() if v)
        slices = [s for s in SLICES if s in first[0]["metrics"]]
        md += [f"### {KIND_TITLES.get(kind, kind)} (`{kind}`)", "",
               "queries per slice: " + ", ".join(f"{s} {first[0]['n_queries'].get(s)}" for s in slices), ""]
        head = ["variant", *[f"{s} {k}" for s in slices for k in report], "best epoch"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        dhead = ["variant", *[f"Δ {s} {k}" for s in slices for k in report]]
        dlines = ["| " + " | ".join(dhead) + " |", "|" + "---|" * len(dhead)]
        pq = {n: (sets[n].per_query(kind, split, v[0]["sha1"]) if v else None) for n, v in per_variant.items()}
        base_avg = averaged(pq[base]) if pq.get(base) else None
        for name, seeds in per_variant.items():
            if not seeds:
                continue
            cells, dcells = [name], [name]
            avg = averaged(pq[name]) if pq[name] else None
            for s in slices:
                for k in report:
                    vals = [x["metrics"].get(s, {}).get(k) for x in seeds]
                    vals = [v for v in vals if v is not None]
                    mean = float(np.mean(vals)) if vals else None
                    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
                    lo = hi = None
                    if avg is not None and s in avg.per_query and k in avg.per_query[s]:
                        (lo, hi), = bootstrap_ci(avg.per_query[s][k], n_boot, 0.95, seed)
                    elif len(seeds) == 1:
                        lo, hi = (seeds[0]["ci"].get(s, {}).get(k) or [None, None])
                    cell = fmt(mean) + (f" ± {sd:.4f}" if sd is not None else "")
                    if lo is not None and np.isfinite(lo):
                        cell += f" [{lo:.4f}, {hi:.4f}]"
                    cells.append(cell)
                    d = {"diff": None, "lo": None, "hi": None}
                    if name != base and avg is not None and base_avg is not None and s in avg.per_query:
                        try:
                            d = paired_diff_ci(avg, base_avg, k, s, n_boot, 0.95, seed)
                        except Exception:  # queries differ (another split or config): no pairing
                            pass
                    dcells.append("(baseline)" if name == base else
                                  fmt(d["diff"], True) + (f" [{d['lo']:+.4f}, {d['hi']:+.4f}]" if d["lo"] is not None else "")
                                  + (" *" if d["lo"] is not None and (d["lo"] > 0 or d["hi"] < 0) else ""))
                    csv_rows.append([name, kind, split, s, k, mean, sd, lo, hi, len(seeds),
                                     seeds[0]["n_queries"].get(s), base, d["diff"], d["lo"], d["hi"],
                                     ";".join(str(m.get("best_epoch")) for m in sets[name].metrics)])
                    table_rows.setdefault(kind, {}).setdefault(name, {})[(s, k)] = (mean, lo, hi)
            cells.append(", ".join(str(m.get("best_epoch")) for m in sets[name].metrics))
            lines.append("| " + " | ".join(cells) + " |")
            dlines.append("| " + " | ".join(dcells) + " |")
        md += lines + ["", f"Paired differences to {base} (* = interval excludes 0):", ""] + dlines + [""]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "query_kind", "split", "slice", "metric", "value", "sd", "ci_lo", "ci_hi",
                "n_seeds", "n_queries", "baseline", "diff", "diff_lo", "diff_hi", "best_epoch"])
    w.writerows(csv_rows)
    write_text_atomic(out / "compare.csv", buf.getvalue())
    text = "\n".join(md).rstrip() + "\n"
    write_text_atomic(out / "compare.md", text)
    _plot(table_rows.get(kinds[0], {}) if kinds else {}, report[0], split, out)
    return text


def _plot(rows: dict[str, dict], metric: str, split: str, out: Path) -> None:
    from mrs.train.plots import plot_tail_head

    data = [{"variant": n, "head": r.get(("head", metric), (None,))[0], "tail": r.get(("tail", metric), (None,))[0],
             "head_ci": list(r.get(("head", metric), (None, None, None))[1:]),
             "tail_ci": list(r.get(("tail", metric), (None, None, None))[1:])} for n, r in rows.items()]
    plot_tail_head(data, metric, out / "tail_head.png", title=f"{split}: tail vs head {metric}")
