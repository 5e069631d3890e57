"""Strict YAML -> frozen dataclass loading.

Unknown keys, missing required keys and wrong types fail with a SpecError that names the file and the dotted key,
because a silently ignored typo in a threshold is a wrong corpus. `--set key=value` overrides use the same checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from data_specs.errors import SpecError

T = TypeVar("T")


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None


def load_spec(cls: type[T], path: str | Path, overrides: Mapping[str, Any] | None = None) -> T:
    """Load `path` into dataclass `cls`; `overrides` maps dotted keys to values applied before checking."""
    data = load_yaml(path)
    if data is None:
        data = {}
    if overrides:
        data = apply_overrides(data, overrides, str(path))
    return from_mapping(cls, data, str(path))


def apply_overrides(data: Any, overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: top level must be a mapping")
    data = _deepcopy(data)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecError(f"{where}: {dotted}: cannot set a key inside non-mapping {part!r}")
            node = child
        node[parts[-1]] = value
    return data


def parse_set_args(items: list[str]) -> dict[str, Any]:
    """`key=value` strings (values parsed as YAML scalars/lists) -> overrides mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


def from_mapping(cls: type[T], data: Any, where: str, prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, checking every key and value type recursively."""
    return _convert(cls, data, where, prefix)


def _fail(where: str, key: str, message: str) -> SpecError:
    return SpecError(f"{where}: {key or '<top level>'}: {message}")


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where, key)
            except SpecError as exc:
                errors.append(str(exc))
        raise errors[0] if len(errors) == 1 else _fail(where, key, f"{value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise _fail(where, key, f"{value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise _fail(where, key, f"expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp in (dict, Mapping) or origin is typing.Mapping:
        if not isinstance(value, dict):
            raise _fail(where, key, f"expected a mapping, got {type(value).__name__}")
        ktype, vtype = args if args else (Any, Any)
        return {
            _convert(ktype, k, where, _join(key, k)): _convert(vtype, v, where, _join(key, k))
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, key, f"expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, key, f"expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise _fail(where, key, f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise _fail(where, key, f"unsupported spec field type {tp}")


def _dataclass(cls: Any, value: Any, where: str, key: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, key, f"expected a mapping for {cls.__name__}, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise _fail(where, _join(key, unknown[0]), f"unknown key (allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], where, _join(key, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(where, _join(key, name), "required key is missing")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _fail(where, key, str(exc)) from None
    return obj


def to_plain(obj: Any) -> Any:
    """A spec dataclass back to plain dicts/lists (for saving resolved configs and hashing)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
