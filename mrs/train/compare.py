"""``mrs compare``: several variants on the same data, split and seed; one table and one plot.

Config file::

    data: {dir: /path/to/prepared, features: [text-minilm, image-effnet]}
    train: {epochs: 50, seed: 2024}        # the base TrainConfig shared by every variant
    report: [recall@20, ndcg@20]           # metrics in the table (default shown)
    seeds: [0, 1, 2]                       # optional: train.seed per repeat (or --seeds 0,1,2)
    baseline: mf                           # paired differences are to this variant (default: mf if
                                           # it is one, else the first; an unknown name is an error)
    variants:                              # optional; default = default_variants()
      - {name: mf, set: {model.encoder: mf, model.modes: false}}
      - {name: mf+cp, set: {model.encoder: mf, model.modes: true}}

Writes ``DIR/config.yaml`` (base + variants), ``DIR/runs/<variant>/`` (one ``mrs train`` run
each; ``runs/<variant>/seed<s>/`` with seeds), ``DIR/compare.md``, ``DIR/compare.csv`` (long
format, both query kinds, paired differences: :mod:`mrs.train.compare_report`) and
``DIR/tail_head.png``. Variants whose ``metrics.json`` exists are not retrained (their saved
``config.yaml`` must match the variant's, up to epochs / patience / threads / W&B, or compare stops
with one line naming the run and the key); an interrupted variant resumes from its checkpoint.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from mrs.config import read_yaml
from mrs.errors import MrsError
from mrs.io import write_text_atomic
from mrs.train.config import TrainConfig, load_train_config



def default_variants() -> list[dict[str, Any]]:
    """The closed-form baselines (``mrs.models.CLOSED_FORM``: pop, itemknn, rp3beta, ease, each at
    its defaults), then every registered encoder (``ENCODERS``, in rank order) without and with
    CP modes: a table a reviewer can read against the simple baselines first (:func:`load_compare`
    leaves out the encoders that need content when ``data.features`` is empty)."""
    from mrs.models.base import CLOSED_FORM, ENCODERS

    return ([{"name": name, "set": {"model.encoder": name}} for name in CLOSED_FORM.names()] +
            [{"name": f"{enc}{'+cp' if modes else ''}", "set": {"model.encoder": enc, "model.modes": modes}}
             for enc in ENCODERS.names() for modes in (False, True)])


DEFAULT_REPORT = ["recall@20", "ndcg@20"]
SLICES = ("all", "tail", "head", "cold")


def load_compare(path: str | Path | None, overrides: list[str] = ()
                 ) -> tuple[list[tuple[str, TrainConfig]], list[str], dict]:
    """``([(variant name, resolved TrainConfig)], report metrics, resolved raw config)``; the
    resolved config also holds ``seeds`` (list or ``None``) and ``baseline``."""
    from mrs.models.base import ENCODERS

    raw = read_yaml(path) if path else {}
    variants = raw.pop("variants", None)
    defaulted = not variants
    variants = variants or default_variants()
    report = raw.pop("report", None) or DEFAULT_REPORT
    seeds = raw.pop("seeds", None)
    baseline = raw.pop("baseline", None)
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
        if (defaulted and not cfg.data.features and cfg.model.encoder in ENCODERS
                and ENCODERS.get(cfg.model.encoder).needs_features):
            continue  # a default variant that needs content (vbpr, lattice) on data without data.features
        out.append((name, cfg))
    if seeds is not None and (not isinstance(seeds, list) or not all(isinstance(x, int) for x in seeds)):
        raise MrsError(f"{where}: 'seeds' must be a list of integers, got {seeds!r}")
    if baseline is None:  # the default: mf when it is a variant, else the first one
        baseline = "mf" if "mf" in names else out[0][0]
    baseline = check_baseline(str(baseline), [n for n, _ in out], f"{where}: 'baseline'")
    kept = {n for n, _ in out}
    resolved = {**raw, "report": report, "variants": [v for v in variants if str(v["name"]) in kept], "seeds": seeds, "baseline": baseline,
                "overrides": list(overrides)}
    return out, list(report), resolved


def check_baseline(baseline: str, names: list[str], where: str) -> str:
    """The paired differences need a baseline that is one of the variants (fail before training)."""
    if baseline not in names:
        raise MrsError(f"{where}: unknown variant {baseline!r} (variants: {', '.join(names)})")
    return baseline


def run_compare(config: str | Path | None, out_dir: str | Path, overrides: list[str] = (),
                wandb: bool | None = None, seeds: list[int] | None = None,
                report_only: bool = False, baseline: str | None = None) -> str:
    """Train every variant (skipping finished ones) and write the report; returns the markdown.
    ``seeds`` (``--seeds``) wins over the config's ``seeds:``; each seed sets ``train.seed``.
    ``report_only``: train nothing; the report covers the finished runs (others are listed)."""
    import copy

    from mrs.tracking import make_logger
    from mrs.train.trainer import config_difference, run_train

    out = Path(out_dir)
    variants, report, resolved = load_compare(config, list(overrides))
    if seeds is not None:
        resolved["seeds"] = list(seeds)
    if baseline is not None:  # --baseline wins over the config's baseline:
        resolved["baseline"] = check_baseline(baseline, [n for n, _ in variants], "--baseline")
    if resolved["seeds"]:  # one run per (variant, seed): runs/<variant>/seed<s>
        expanded = []
        for sd in resolved["seeds"]:  # seed-major: an interrupted compare has whole seeds done
            for name, cfg in variants:
                c = copy.deepcopy(cfg)
                c.train.seed = int(sd)
                expanded.append((f"{name}/seed{sd}", c))
        variants = expanded
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    if wandb is not None:  # --no-wandb (or an explicit on) wins over the config
        for _, cfg in variants:
            cfg.wandb.enabled = wandb
    runs: dict[str, list[Path]] = {}
    for i, (name, cfg) in enumerate(variants):
        run_dir = out / "runs" / name
        runs.setdefault(name.split("/")[0], []).append(run_dir)
        mfile = run_dir / "metrics.json"
        if mfile.is_file():
            diff = config_difference(run_dir / "config.yaml", cfg)
            if diff:  # an edited compare config must not report the old model's figures
                raise MrsError(f"{run_dir}: finished with another config than variant {name.split('/')[0]!r} "
                               f"now asks for ({diff}); delete that run directory or use another --out")
            print(f"[{i + 1}/{len(variants)}] {name}: done, reusing {mfile}")
            continue
        if report_only:
            print(f"[{i + 1}/{len(variants)}] {name}: not finished, left out of the report")
            runs[name.split("/")[0]].remove(run_dir)
            continue
        print(f"[{i + 1}/{len(variants)}] {name}: training into {run_dir}")
        cfg.wandb.group = cfg.wandb.group or out.name
        logger = make_logger(cfg.wandb.enabled, project=cfg.wandb.project)
        run_train(cfg, run_dir, logger=logger, resume=True)
    runs = {n: dirs for n, dirs in runs.items() if dirs}
    if not runs:
        raise MrsError(f"{out}: no finished run to report")
    md = write_report(runs, report, out, baseline=resolved["baseline"],
                      n_boot=variants[0][1].eval.bootstrap or 1000, seed=variants[0][1].eval.seed)
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


def write_report(runs: dict[str, list[Path]], report: list[str], out: Path, baseline: str = "mf",
                 n_boot: int = 1000, seed: int = 0) -> str:
    """``compare.md``, ``compare.csv`` and ``tail_head.png`` from the runs' metrics.json and
    per_query.parquet (``runs``: variant -> its run directories, one per seed)."""
    from mrs.train import compare_report

    return compare_report.write_report(runs, report, out, baseline, n_boot, seed)
