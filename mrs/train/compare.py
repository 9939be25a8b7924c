"""``mrs compare``: several variants on the same data, split and seed; one table and one plot.

Config file::

    data: {dir: /path/to/prepared, features: [text-minilm, image-effnet]}
    train: {epochs: 50, seed: 2024}        # the base TrainConfig shared by every variant
    report: [recall@20, ndcg@20]           # metrics in the table (default shown)
    variants:                              # optional; default = default_variants()
      - {name: mf, set: {model.encoder: mf, model.modes: false}}
      - {name: mf+cp, set: {model.encoder: mf, model.modes: true}}

Writes ``DIR/config.yaml`` (base + variants), ``DIR/runs/<variant>/`` (one ``mrs train`` run
each), ``DIR/compare.md``, ``DIR/compare.csv`` (long format: variant, split, slice, metric,
value, ci_lo, ci_hi, n_queries) and ``DIR/tail_head.png``. Variants whose ``metrics.json``
exists are not retrained; an interrupted variant resumes from its checkpoint.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from mrs.config import read_yaml
from mrs.errors import MrsError
from mrs.io import write_text_atomic
from mrs.train.config import TrainConfig, load_train_config



def default_variants() -> list[dict[str, Any]]:
    """Every registered encoder (``mrs.models.ENCODERS``, in rank order), without and with CP modes."""
    from mrs.models.base import ENCODERS

    return [{"name": f"{enc}{'+cp' if modes else ''}", "set": {"model.encoder": enc, "model.modes": modes}}
            for enc in ENCODERS.names() for modes in (False, True)]


DEFAULT_REPORT = ["recall@20", "ndcg@20"]
SLICES = ("all", "tail", "head", "cold")


def load_compare(path: str | Path | None, overrides: list[str] = ()
                 ) -> tuple[list[tuple[str, TrainConfig]], list[str], dict]:
    """``([(variant name, resolved TrainConfig)], report metrics, resolved raw config)``."""
    raw = read_yaml(path) if path else {}
    variants = raw.pop("variants", None) or default_variants()
    report = raw.pop("report", None) or DEFAULT_REPORT
    where = path or "<defaults>"
    if not isinstance(variants, list):
        raise MrsError(f"{where}: 'variants' must be a list of {{name, set}} mappings")
    out, names = [], set()
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or "name" not in v or set(v) - {"name", "set"}:
            raise MrsError(f"{where}: variants[{i}] must be a mapping with 'name' and 'set'")
        name = str(v["name"])
        if name in names or "/" in name or not name:
            raise MrsError(f"{where}: variants[{i}]: name {name!r} is empty, repeated or has '/'")
        names.add(name)
        sets = [f"{k}={yaml.safe_dump(val, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, val in (v.get("set") or {}).items()]
        try:
            cfg = load_train_config(None, [*overrides, *sets], base=raw)
        except MrsError as e:
            raise MrsError(f"{where}: variant {name!r}: {e}") from None
        out.append((name, cfg))
    resolved = {**raw, "report": report, "variants": variants, "overrides": list(overrides)}
    return out, list(report), resolved


def run_compare(config: str | Path | None, out_dir: str | Path, overrides: list[str] = (),
                wandb: bool | None = None) -> str:
    """Train every variant (skipping finished ones) and write the report; returns the markdown."""
    from mrs.tracking import make_logger
    from mrs.train.trainer import run_train

    out = Path(out_dir)
    variants, report, resolved = load_compare(config, list(overrides))
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    if wandb is not None:  # --no-wandb (or an explicit on) wins over the config
        for _, cfg in variants:
            cfg.wandb.enabled = wandb
    results: dict[str, dict] = {}
    for i, (name, cfg) in enumerate(variants):
        run_dir = out / "runs" / name
        mfile = run_dir / "metrics.json"
        if mfile.is_file():
            import json

            print(f"[{i + 1}/{len(variants)}] {name}: done, reusing {mfile}")
            results[name] = json.loads(mfile.read_text())
            continue
        print(f"[{i + 1}/{len(variants)}] {name}: training into {run_dir}")
        cfg.wandb.group = cfg.wandb.group or out.name
        logger = make_logger(cfg.wandb.enabled, project=cfg.wandb.project)
        results[name] = run_train(cfg, run_dir, logger=logger, resume=True)
    md = write_report(results, report, out)
    if variants and variants[0][1].wandb.enabled:  # one extra W&B run holding the comparison itself
        _log_compare(out, resolved, variants[0][1].wandb.project)
    return md


def _log_compare(out: Path, resolved: dict, project: str) -> None:
    from mrs.tracking import make_logger

    logger = make_logger(True, project=project)
    logger.start(resolved, out, name=f"{out.name}-compare", group=out.name, tags=["compare"])
    with open(out / "compare.csv", newline="") as f:
        rows = list(csv.reader(f))
    logger.log_table("compare", rows[0], rows[1:])
    logger.log_image("tail_head", out / "tail_head.png")
    logger.finish()


def write_report(results: dict[str, dict], report: list[str], out: Path) -> str:
    """``compare.md``, ``compare.csv`` and ``tail_head.png`` from each variant's metrics.json."""
    from mrs.train.plots import plot_tail_head

    split = "test" if all("test" in m for m in results.values()) else "valid"
    slices = [s for s in SLICES if any(s in m[split] for m in results.values())]
    # long CSV: one row per (variant, slice, metric)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "split", "slice", "metric", "value", "ci_lo", "ci_hi", "n_queries",
                "best_epoch"])
    for name, m in results.items():
        for s in slices:
            for k in sorted(m[split].get(s, {})):
                lo, hi = _ci(m, split, s, k)
                w.writerow([name, split, s, k, m[split][s][k], lo, hi,
                            m.get("n_queries", {}).get(split, {}).get(s), m.get("best_epoch")])
    write_text_atomic(out / "compare.csv", buf.getvalue())
    # markdown: one row per variant, "value [lo, hi]" per slice x reported metric
    head = ["variant", *[f"{s} {k}" for s in slices for k in report], "best epoch"]
    lines = [f"Split: **{split}**; 95% bootstrap intervals in brackets; "
             f"queries per slice: " + ", ".join(
                 f"{s} {next(iter(results.values())).get('n_queries', {}).get(split, {}).get(s)}"
                 for s in slices), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in results.items():
        cells = [name]
        for s in slices:
            for k in report:
                v = m[split].get(s, {}).get(k)
                lo, hi = _ci(m, split, s, k)
                cells.append("–" if v is None else
                             f"{v:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None else ""))
        cells.append(str(m.get("best_epoch")))
        lines.append("| " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n"
    write_text_atomic(out / "compare.md", md)
    metric = report[0]
    rows = [{"variant": n, "head": m[split].get("head", {}).get(metric),
             "tail": m[split].get("tail", {}).get(metric),
             "head_ci": list(_ci(m, split, "head", metric)), "tail_ci": list(_ci(m, split, "tail", metric))}
            for n, m in results.items()]
    plot_tail_head(rows, metric, out / "tail_head.png", title=f"{split}: tail vs head {metric}")
    return md


def _ci(m: dict, split: str, s: str, k: str) -> tuple[float | None, float | None]:
    ci = m.get("ci", {}).get(split, {}).get(s, {}).get(k)
    return (ci[0], ci[1]) if ci else (None, None)
