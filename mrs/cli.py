"""The ``mrs`` command. Each phase registers its own subcommands from its own package.

A module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, adding parsers whose
``func(args) -> int | None`` does the work. Heavy imports (torch, transformers) happen inside
those functions, so ``mrs --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mrs.errors import MrsError

COMMAND_MODULES = [
    "mrs.synth.cli",      # mrs synth
    "mrs.prep.cli",       # mrs prepare {hm,amazon2023,amazon2014}, mrs download-images
    "mrs.features.cli",   # mrs features {text,image,merge}
    "mrs.train.cli",      # mrs train, mrs compare
    "mrs.sweep.cli",      # mrs sweep
    "mrs.serve.cli",      # mrs export, mrs recommend, mrs serve
    "mrs.demo",           # mrs demo (the README's main job)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrs", description="mrs: multimodal, context-aware recommendation for the long tail "
        "(prepare -> features -> train/compare/sweep).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a phase not installed yet; others still work
            if e.name and name.startswith(e.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MrsError as e:
        print(f"mrs {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a full disk outside mrs.io's atomic writers (which name the directory)
        from mrs.io import disk_full

        if not disk_full(e):
            raise
        where = getattr(e, "filename", None)
        print(f"mrs {args.command}: error: no space left on device{f': {where}' if where else ''}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mrs {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
