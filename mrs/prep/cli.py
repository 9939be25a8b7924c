"""CLI: ``mrs prepare hm|amazon2023|amazon2014`` and ``mrs download-images``.

Every option lives in the source's config dataclass; a value comes from (later wins) the
dataclass default, ``--config FILE`` (YAML, e.g. ``configs/datasets/hm.yaml``), the explicit
flags below, then ``--set key=value``.
"""
from __future__ import annotations

import argparse
from typing import Any

from mrs.config import from_dict, merge_overrides, read_yaml
from mrs.errors import MrsError


def build_config(cls: type, args: argparse.Namespace, flags: dict[str, str],
                 required: tuple[str, ...] = ()) -> Any:
    """Defaults <- YAML <- explicit flags (``flags``: argparse dest -> config key) <- ``--set``."""
    data: dict = read_yaml(args.config) if getattr(args, "config", None) else {}
    for dest, key in flags.items():
        value = getattr(args, dest, None)
        if value is not None:
            data[key] = value
    for key in ("overwrite", "discard_derived"):  # the --out safety flags every source shares
        if getattr(args, key, False):
            data[key] = True
    merge_overrides(data, getattr(args, "set", None) or [])
    cfg = from_dict(cls, data)
    for key in required:
        if not getattr(cfg, key):
            raise MrsError(f"missing required option {key!r} (give --{key.replace('_', '-')} or "
                           f"set it in --config)")
    return cfg


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="dataset config (configs/datasets/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (repeatable), e.g. --set max_bad_frac=0.05")
    p.add_argument("--out", help="output prepared-dataset directory")
    p.add_argument("--name", help="dataset name (default from the input)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier prepared dataset at --out (its features/ and images/ are kept)")
    p.add_argument("--discard-derived", dest="discard_derived", action="store_true",
                   help="with --overwrite: also delete the old dataset's features/, images/ and cache/")


def _run_amazon2014(args: argparse.Namespace) -> int:
    from mrs.prep.amazon2014 import Amazon2014Config, prepare_amazon2014
    cfg = build_config(Amazon2014Config, args, {"sequences": "sequences", "out": "out", "name": "name",
                                                "split": "split", "seed": "seed"},
                       required=("sequences", "out"))
    _report(prepare_amazon2014(cfg))
    return 0


def _run_hm(args: argparse.Namespace) -> int:
    from mrs.prep.hm import HMConfig, prepare_hm
    cfg = build_config(HMConfig, args, {"raw": "raw", "out": "out", "name": "name",
                                        "last_weeks": "last_weeks", "time_mode": "time_mode",
                                        "repeats": "repeats"},
                       required=("raw", "out"))
    _report(prepare_hm(cfg))
    return 0


def _run_amazon2023(args: argparse.Namespace) -> int:
    from mrs.prep.amazon2023 import Amazon2023Config, prepare_amazon2023
    cfg = build_config(Amazon2023Config, args, {"reviews": "reviews", "meta": "meta", "out": "out",
                                                "name": "name", "kcore": "kcore", "split": "split",
                                                "valid": "valid", "test": "test",
                                                "timestamp_unit": "timestamp_unit"},
                       required=("reviews", "out"))
    _report(prepare_amazon2023(cfg))
    return 0


def _run_download(args: argparse.Namespace) -> int:
    from mrs.prep.images import DownloadConfig, download_images
    cfg = build_config(DownloadConfig, args, {"dataset": "dataset", "image_root": "image_root",
                                              "workers": "workers", "timeout": "timeout",
                                              "retries": "retries"},
                       required=("dataset",))
    report = download_images(cfg)
    print(f"images: {report['ok']} downloaded, {report['present']} already present, "
          f"{report['failed']} failed (report: {report['report_path']})")
    return 0 if report["failed"] == 0 else 3


def _report(out) -> None:
    import json
    meta = json.loads((out / "dataset.json").read_text())
    modes = ", ".join(f"{m}={s['cardinality']}" for m, s in meta["modes"].items()) or "none"
    print(f"{meta['name']}: {meta['n_users']} users, {meta['n_items']} items, "
          f"{meta['n_interactions']} interactions; splits {meta['splits']}; modes {modes} -> {out}")


def register(subparsers: argparse._SubParsersAction) -> None:
    prep = subparsers.add_parser("prepare", help="raw data -> prepared dataset directory")
    srcs = prep.add_subparsers(dest="source", metavar="SOURCE")

    p = srcs.add_parser("hm", help="H&M Kaggle csv files (+ images/)")
    _common(p)
    p.add_argument("--raw", help="directory holding transactions_train.csv, articles.csv, ...")
    p.add_argument("--last-weeks", type=int, dest="last_weeks", help="keep only the last N weeks")
    p.add_argument("--time-mode", dest="time_mode", choices=["month", "week", "season", "none"],
                   help="time mode from t_dat (default month)")
    p.add_argument("--repeats", choices=["keep", "collapse_day", "collapse"],
                   help="repeat purchases: keep (default), one per day, or first only")
    p.set_defaults(func=_run_hm)

    p = srcs.add_parser("amazon2023", help="Amazon Reviews 2023 jsonl(.gz) or benchmark csv")
    _common(p)
    p.add_argument("--reviews", help="reviews .jsonl/.jsonl.gz or benchmark .csv (a .train.csv keeps its trio)")
    p.add_argument("--meta", help="meta_<Category>.jsonl(.gz)")
    p.add_argument("--valid", help="explicit valid csv of an official split")
    p.add_argument("--test", help="explicit test csv of an official split")
    p.add_argument("--kcore", type=int, help="k-core filter (0/1: none)")
    p.add_argument("--split", choices=["auto", "official", "leave-last-out", "temporal", "mmrec"])
    p.add_argument("--timestamp-unit", dest="timestamp_unit", choices=["auto", "ms", "s"],
                   help="unit of 'timestamp' (default auto: ms, or s when every value is below 1e11)")
    p.set_defaults(func=_run_amazon2023)

    p = srcs.add_parser("amazon2014", help="Amazon 2014 5-core `user item item ...` text (SASRec/ICLRec)")
    _common(p)
    p.add_argument("--sequences", help="the sequence text file")
    p.add_argument("--split", choices=["mmrec", "leave-last-out"])
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_run_amazon2014)

    prep.set_defaults(func=lambda a: (prep.print_help(), 2)[1])

    p = subparsers.add_parser("download-images", help="fetch the image URLs a prepared dataset records")
    p.add_argument("--dataset", help="prepared dataset directory")
    p.add_argument("--image-root", dest="image_root", help="where to store images (default DATASET/images)")
    p.add_argument("--workers", type=int)
    p.add_argument("--timeout", type=float)
    p.add_argument("--retries", type=int)
    p.add_argument("--config", metavar="YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_run_download)
