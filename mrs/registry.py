"""Registries: name -> plug-in, one per extension point (encoders, fusions, user encoders,
scorers, dataset sources).

A plug-in is one file that decorates its class::

    from mrs.models.base import ENCODERS, Encoder

    @ENCODERS.register("toy")
    class ToyEncoder(Encoder):
        \"\"\"One line that ``mrs train --help`` shows.\"\"\"
        @classmethod
        def from_config(cls, cfg, ctx): ...

Config validation (``model.encoder: toy``), ``mrs compare``'s default variants, the CLI help and
the parametrised tests all read the registry, so nothing else needs editing. Built-in plug-ins
are found by importing every module of their package (:func:`import_package`); third-party
packages can add theirs through the ``mrs.plugins`` entry-point group (:func:`load_entry_points`).
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any, Callable, Generic, Iterator, TypeVar

from mrs.errors import MrsError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """``kind``: what is registered (for messages); ``key``: the config key that selects one
    (``model.encoder``); ``packages``: modules imported on first lookup, so built-ins register
    themselves without a hand-kept list."""

    def __init__(self, kind: str, key: str, packages: tuple[str, ...] = ()):
        self.kind, self.key, self.packages = kind, key, packages
        self._items: dict[str, T] = {}
        self._rank: dict[str, tuple[int, int]] = {}
        self._loaded = False

    def register(self, name: str, rank: int = 100) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")``. A name registers once. ``rank`` orders
        :meth:`names` (then registration order), e.g. baselines first in ``mrs compare``."""
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise MrsError(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
            self._items[name] = obj
            if isinstance(obj, type) and "plugin_name" in dir(obj):
                obj.plugin_name = name  # the class knows the name it is configured by
            self._rank.setdefault(name, (rank, len(self._rank)))
            return obj
        return deco

    def unregister(self, name: str) -> None:
        """Remove a plug-in (tests register throw-away ones)."""
        self._items.pop(name, None)
        self._rank.pop(name, None)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # before importing: a plug-in module may look the registry up
            for pkg in self.packages:
                import_package(pkg)
            load_entry_points()

    def names(self) -> list[str]:
        """Registered names by rank, then registration order."""
        self._load()
        return sorted(self._items, key=self._rank.__getitem__)

    def get(self, name: str) -> T:
        """The plug-in for ``name``, or a one-line error naming the config key and the choices."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise MrsError(f"config key {self.key!r}: {name!r} is not one of {self.names()}") from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def describe(self) -> str:
        """``name: first docstring line`` per plug-in, for ``--help`` texts."""
        return "; ".join(f"{n}: {_summary(obj)}" if _summary(obj) else n
                         for n, obj in ((n, self.get(n)) for n in self.names()))


def _summary(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def import_package(package: str) -> None:
    """Import ``package`` and, for a package, every module in it (so their ``@register``
    decorators run). Modules whose name starts with ``_`` are skipped."""
    pkg = importlib.import_module(package)
    if not hasattr(pkg, "__path__"):  # a plain module
        return
    for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{package}."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)


_entry_points_loaded = False


def load_entry_points(group: str = "mrs.plugins") -> None:
    """Import the modules other installed packages declare under ``[project.entry-points."mrs.plugins"]``."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as e:  # a broken third-party plug-in must not take the built-ins down
            log.warning("mrs plug-in %s (%s) failed to load: %s", ep.name, ep.value, e)


class RegistryUnion:
    """Several registries behind one config key, in order: ``model.encoder`` names either a
    gradient encoder (``ENCODERS``) or a closed-form model (``CLOSED_FORM``). Offers what config
    validation and lookups use: ``in``, :meth:`names`, :meth:`get`, :meth:`describe`."""

    def __init__(self, *registries: Registry):
        self.registries, self.key = registries, registries[0].key

    def __contains__(self, name: object) -> bool:
        return any(name in r for r in self.registries)

    def names(self) -> list[str]:
        return [n for r in self.registries for n in r.names()]

    def get(self, name: str) -> Any:
        for r in self.registries:
            if name in r:
                return r.get(name)
        raise MrsError(f"config key {self.key!r}: {name!r} is not one of {self.names()}")

    def describe(self) -> str:
        return "; ".join(r.describe() for r in self.registries)
