"""Dataclass configs, nanoGPT style: commented defaults in code, YAML files and ``--set`` on top.

Every phase declares its options as (nested) dataclasses. ``load_config`` merges, in order:
the dataclass defaults, a YAML file, then ``key.sub=value`` overrides (values parsed as YAML).
Unknown keys are an error naming the full dotted key, so a typo never silently does nothing.
A field declared ``field(default=..., metadata={"registry": REG})`` only takes names registered
in ``REG`` (:mod:`mrs.registry`), so plug-in choices are validated like ``Literal`` ones.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, TypeVar, get_args, get_origin

import yaml

from mrs.errors import MrsError
from mrs.io import write_text_atomic

T = TypeVar("T")
MAX_YAML_DEPTH = 100  # configs nest 2-4 levels; far below where PyYAML's recursion hits Python's limit


class YamlTooDeep(yaml.YAMLError):
    pass


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses nesting beyond ``MAX_YAML_DEPTH``: PyYAML composes
    recursively, so a list nested 3000 deep would otherwise end in a ``RecursionError``."""

    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlTooDeep(f"nested deeper than {MAX_YAML_DEPTH} levels (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with a nesting limit (:class:`YamlTooDeep`, a ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_SafeLoader)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"model.dim=64"`` -> (["model", "dim"], 64). The value is parsed as YAML."""
    if "=" not in item:
        raise MrsError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise MrsError(f"override {item!r} has an empty key")
    try:
        value = safe_load(raw) if raw.strip() != "" else ""
    except (yaml.YAMLError, ValueError):  # e.g. an impossible date like 2020-13-01: keep the string
        value = raw
    return key.split("."), value


def merge_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``key.sub=value`` strings onto a nested dict (in place; returned for chaining)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise MrsError(f"override {item!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MrsError(f"config file not found: {path}")
    try:
        data = safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise MrsError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MrsError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = (),
                base: dict | None = None) -> T:
    """Defaults <- ``base`` dict <- YAML file <- overrides, validated into ``cls``."""
    import copy

    data: dict = copy.deepcopy(base or {})  # overrides write into nested sections: never into the caller's
    if path is not None:
        data = _deep_merge(data, read_yaml(path))
    merge_overrides(data, overrides)
    return from_dict(cls, data)


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ``MrsError``."""
    if not isinstance(data, dict):
        raise MrsError(f"config section {prefix or '<root>'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise MrsError(f"unknown config key {key!r} (valid keys here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
        registry = fields[name].metadata.get("registry")
        if registry is not None and kwargs[name] not in registry:
            # a plug-in choice (model.encoder, model.fusion, ...): the registry is the list
            raise MrsError(f"config key {prefix + name!r}: {kwargs[name]!r} is not one of {registry.names()}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value or {}, prefix=f"{key}.")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise MrsError(f"config key {key!r}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key)
            except MrsError as e:
                errors.append(str(e))
        raise MrsError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        (inner, *_) = get_args(tp) or (Any,)
        out = [_coerce(inner, v, key) for v in value]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise MrsError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise MrsError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise MrsError(f"config key {key!r}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value)
            except (TypeError, ValueError):
                raise MrsError(f"config key {key!r}: expected a number, got {value!r}") from None
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise MrsError(f"config key {key!r}: expected a string, got {value!r}")
        return str(value)
    return value


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the full resolved config as YAML (atomically), so every result carries its config."""
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a (nested) config dataclass, e.g. ``["model.encoder", ...]``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += valid_keys(tp, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
