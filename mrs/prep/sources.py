"""The dataset-source registry behind ``mrs prepare SOURCE``.

A source is one module in ``mrs/prep/`` that ends with::

    SOURCES.register("name")(Source(
        help="one line for `mrs prepare --help`", config=MyConfig, prepare=prepare_my,
        required=("raw", "out"),
        options=(Option("--raw", "raw", help="..."), Option("--kcore", "kcore", type=int), ...)))

plus its defaults in ``configs/datasets/<name>.yaml``. The CLI builds ``mrs prepare <name>`` from
it (``--config``, ``--set``, ``--out`` and ``--name`` come with every source), so nothing else
needs editing. ``prepare(cfg)`` returns the prepared dataset directory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mrs.registry import Registry


@dataclass(frozen=True)
class Option:
    """One command-line flag that sets config key ``key`` (argparse keyword arguments in ``kwargs``)."""

    flag: str
    key: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, flag: str, key: str, **kwargs: Any):
        object.__setattr__(self, "flag", flag)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "kwargs", kwargs)


@dataclass(frozen=True)
class Source:
    help: str
    config: type                      # the source's config dataclass
    prepare: Callable[[Any], Path]    # config -> prepared dataset directory
    required: tuple[str, ...] = ()    # config keys that must be set
    options: tuple[Option, ...] = ()  # source-specific flags


SOURCES: Registry[Source] = Registry("dataset source", "mrs prepare SOURCE", ("mrs.prep",))
