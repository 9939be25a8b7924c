"""``mrs train`` and ``mrs compare``. Heavy imports (torch) happen inside the handlers."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _plugins_help() -> str:
    """The registered plug-ins, read from the registries (a new encoder shows up here)."""
    from mrs.losses import LOSSES
    from mrs.models.base import CLOSED_FORM, ENCODERS, FUSIONS, SCORERS, USERS

    lines = [f"{reg.key}: {reg.describe()}" for reg in (ENCODERS, FUSIONS, USERS, SCORERS, LOSSES)]
    return "\n".join([*lines, f"{CLOSED_FORM.key} (closed form, no epochs): {CLOSED_FORM.describe()}"])


_PLUGINS = "<plug-ins>"


class _PluginsHelp(argparse.RawDescriptionHelpFormatter):
    """Expands the epilog only when help is printed, so ``mrs --help`` does not import torch."""

    def add_text(self, text: str | None) -> None:
        if text == _PLUGINS:
            text = "plug-ins (set with --set KEY=NAME):\n" + _plugins_help()
        super().add_text(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train one model on a prepared dataset; writes a run directory",
        description="Train one model (Adam on model.loss, early stopping on validation) and write "
                    "RUN_DIR/{config.yaml,metrics.json,best.pt,last.pt} (and final.pt, the train + "
                    "valid refit whose test figures metrics.json reports, where train.final_fit "
                    "makes one). Several processes or "
                    "GPUs: torchrun --nproc_per_node N -m mrs train ... (train.batch_size is the "
                    "global batch; see mrs/train/distributed.py).",
        epilog=_PLUGINS, formatter_class=_PluginsHelp)
    p.add_argument("--config", type=Path, help="YAML config (see configs/experiments/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.encoder=lightgcn (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--no-wandb", action="store_true", help="do not log to Weights & Biases")
    p.add_argument("--no-test", action="store_true",
                   help="leave the test split unread (hyper-parameter search)")
    p.set_defaults(func=_train)

    c = subparsers.add_parser(
        "compare", help="train several variants on the same data and seeds; table + plot",
        description="Train the variants listed in the config (default: MF, LightGCN, FREEDOM, "
                    "each with and without CP modes) and write DIR/{compare.md,compare.csv,"
                    "tail_head.png,config.yaml,runs/<variant>/}. Finished variants are not rerun.",
        epilog=_PLUGINS, formatter_class=_PluginsHelp)
    c.add_argument("--config", type=Path, help="YAML: a base TrainConfig plus a 'variants:' list")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base config key for every variant (repeatable)")
    c.add_argument("--out", type=Path, required=True, help="output directory")
    c.add_argument("--no-wandb", action="store_true", help="do not log to Weights & Biases")
    c.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                   help="comma-separated train seeds, e.g. 0,1,2: every variant once per seed "
                        "(mean ± sd beside the paired intervals); wins over the config's 'seeds:'")
    c.add_argument("--baseline", help="variant the paired differences are taken to (default: the "
                                      "config's 'baseline:', else mf, else the first variant)")
    c.add_argument("--report-only", action="store_true",
                   help="train nothing: write the tables from the finished runs (e.g. while others run)")
    c.set_defaults(func=_compare)


def _train(args: argparse.Namespace) -> int:
    from mrs.tracking import make_logger
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    cfg = load_train_config(args.config, args.overrides)
    if args.no_wandb:
        cfg.wandb.enabled = False
    logger = make_logger(cfg.wandb.enabled, project=cfg.wandb.project)
    try:
        metrics = run_train(cfg, args.out, logger=logger, resume=args.resume,
                            evaluate_test=not args.no_test)
    except KeyboardInterrupt:
        if (args.out / "last.pt").is_file():
            print(f"mrs train: the last finished epoch is checkpointed in {args.out}; continue with "
                  f"the same command plus --resume", file=sys.stderr)
        raise
    if int(os.environ.get("RANK", "0")) != 0:   # torchrun: rank 0 reports
        return 0
    split = "test" if "test" in metrics else "valid"
    m = cfg.train.select_metric
    parts = [f"{s} {m}={v.get(m):.4f}" for s, v in metrics[split].items() if v.get(m) is not None]
    print(f"{args.out}: best epoch {metrics['best_epoch']}; {split}: " + ", ".join(parts))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from mrs.train.compare import run_compare

    table = run_compare(args.config, args.out, overrides=args.overrides,
                        wandb=False if args.no_wandb else None, seeds=args.seeds,
                        report_only=args.report_only, baseline=args.baseline)
    print(table)
    return 0
