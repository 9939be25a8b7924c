"""``mrs demo``: the README's main job, end to end on data the project generates itself.

It is literally a script of ``mrs`` commands (each printed before it runs, so a reader can copy
them onto real data):

    mrs synth --format hm ...            raw H&M-format files with a planted CP structure
    mrs prepare hm ...                   phase 0: the prepared-dataset contract
    mrs features text|image ...          phase 1: MiniLM text, EfficientNet-Lite0 image stores
    mrs compare --config ...             phases 2-4: MF / LightGCN / FREEDOM, with and without
                                         CP context/time modes, and the Hybrid (a SASRec state
                                         in the CP query); table + tail-vs-head plot
    mrs export ... / mrs recommend ...   the variant best on validation, frozen into a model
                                         directory; the top 12 for one user, through the code
                                         path `mrs serve` answers with

Every step is skipped when its output is already complete, so a killed demo resumes.
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from mrs.errors import MrsError

REPO = Path(__file__).resolve().parents[1]
SIZES = {  # users, items, interactions: "small" finishes in minutes on 2 CPU cores
    "tiny": (300, 400, 6000),
    "small": (3000, 2000, 100000),
    "medium": (20000, 10000, 600000),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on generated data: synth -> prepare -> features -> compare",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/demo", help="working directory (default out/demo)")
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="generated data size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=str(REPO / "configs" / "experiments" / "demo_compare.yaml"),
                   help="compare config (variants and training settings)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a compare config key for every variant")
    p.add_argument("--no-wandb", action="store_true", help="do not log to Weights & Biases")
    p.set_defaults(func=run)


def _mrs(argv: list[str]) -> None:
    from mrs.cli import main

    print(f"\n$ mrs {shlex.join(argv)}", flush=True)
    t0 = time.perf_counter()
    rc = main(argv)
    if rc:
        raise MrsError(f"step `mrs {argv[0]}` failed (exit {rc}); rerun `mrs demo` to resume")
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    raw, prepared, compare = out / "raw", out / "prepared", out / "compare"
    users, items, inter = SIZES[args.size]
    t0 = time.perf_counter()

    if not (raw / "transactions_train.csv").is_file():
        _mrs(["synth", "--format", "hm", "--out", str(raw), "--users", str(users), "--items", str(items),
              "--interactions", str(inter), "--seed", str(args.seed)])
    if not (prepared / "dataset.json").is_file():
        # 4-week valid and test windows: at this size Kaggle's 1-week windows hold too few queries
        _mrs(["prepare", "hm", "--raw", str(raw), "--out", str(prepared), "--set", "valid_days=28",
              "--set", "test_days=28"])
    feats = prepared / "features"
    if not list(feats.glob("text-*.h5")):
        _mrs(["features", "text", "--dataset", str(prepared)])
    if not list(feats.glob("image-*.h5")):
        _mrs(["features", "image", "--dataset", str(prepared)])
    _mrs(["compare", "--config", args.config, "--set", f"data.dir={prepared}", "--set", f"train.seed={args.seed}",
          *sum((["--set", s] for s in args.set), []), "--out", str(compare),
          *(["--no-wandb"] if args.no_wandb else [])])

    best = best_variant(compare)
    model = out / "model"
    manifest = model / "manifest.json"
    if not (manifest.is_file() and json.loads(manifest.read_text())["source"]["run_dir"] == str(best.resolve())):
        _mrs(["export", str(best), "--out", str(model), "--force"])
    user = (model / "user_ids.txt").read_text().split("\n", 1)[0]
    _mrs(["recommend", "--model", str(model), "--user", user, "-k", "12", "--exclude-seen"])

    table = compare / "compare.md"
    print(f"\n== mrs demo finished in {time.perf_counter() - t0:.0f} s ==")
    print(f"dataset:  {prepared}/dataset.json")
    print(f"features: {', '.join(sorted(p.name for p in feats.iterdir() if p.suffix in ('.h5', '.lmdb')))}")
    print(f"report:   {table}  and  {compare / 'tail_head.png'}")
    print(f"model:    {model}  (best on validation: {best.name}; serve it with "
          f"`mrs serve --model {model}`)\n")
    if table.is_file():
        print(table.read_text())
    return 0


def best_variant(compare: Path, metric: str = "recall@20") -> Path:
    """The run of the servable variant with the best *validation* metric (the test split is never
    used to pick; closed-form baselines that ``mrs export`` cannot serve, e.g. EASE, are skipped)."""
    from mrs.train.closed_form import check_export
    from mrs.train.config import load_train_config

    best, value = None, float("-inf")
    for m in sorted((compare / "runs").glob("*/metrics.json")):
        v = json.loads(m.read_text()).get("valid", {}).get("all", {}).get(metric)
        if v is None or v <= value:
            continue
        try:
            if (m.parent / "config.yaml").is_file():  # a run's own config says what it is
                check_export(load_train_config(m.parent / "config.yaml"))
        except MrsError:
            continue
        best, value = m.parent, v
    if best is None:
        raise MrsError(f"{compare / 'runs'}: no finished variant that mrs export can serve with a validation {metric}")
    return best
