"""CLI: ``mrs prepare SOURCE`` (one subcommand per registered source, :mod:`mrs.prep.sources`)
and ``mrs download-images``.

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


def _run_source(name: str, args: argparse.Namespace) -> int:
    from mrs.prep.sources import SOURCES
    src = SOURCES.get(name)
    flags = {"out": "out", "name": "name", **{_dest(o.flag): o.key for o in src.options}}
    _report(src.prepare(build_config(src.config, args, flags, required=src.required)))
    return 0


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


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

    from mrs.prep.sources import SOURCES
    for name in SOURCES.names():  # one module per source in mrs/prep/ registers it
        src = SOURCES.get(name)
        p = srcs.add_parser(name, help=src.help)
        _common(p)
        for o in src.options:
            p.add_argument(o.flag, dest=_dest(o.flag), **o.kwargs)
        p.set_defaults(func=lambda a, name=name: _run_source(name, a))

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
