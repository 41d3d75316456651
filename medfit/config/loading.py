"""Loading configs: YAML and ``key.path=value`` overrides in, strict keys and types, errors that name the key path."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from medfit.config.kinds import check_experiment
from medfit.config.schema import ExperimentConfig
from medfit.errors import ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int -> float only)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(tp, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{path}: expected null, got {value!r}")
        return None
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected float, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected int, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported config type {tp!r}")


def _field_default(cls: type, name: str) -> Any:
    """The default value of a dataclass field (its factory called), or None when it has none."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _build(cls: type, data: dict, path: str = "", base: Any = None) -> Any:
    """A ``cls`` from a mapping; a nested section given as a mapping starts from that section's own default (so
    ``vlm.optim: {lr: 1e-4}`` keeps the VLM's other optimiser defaults)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise ConfigError(f"{key_path}: unknown key (allowed: {', '.join(sorted(names))})")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            start = getattr(base, key) if base is not None else _field_default(cls, key)
            kwargs[key] = _build(hints[key], value, key_path, start)
        else:
            kwargs[key] = _coerce(value, hints[key], key_path)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def config_from_dict(data: dict | None, cls: type = ExperimentConfig) -> Any:
    """Build a typed, frozen config from a plain mapping, refusing unknown keys, wrong types and (for an
    experiment) keys that the chosen model kind does not use."""
    cfg = _build(cls, data or {})
    return check_experiment(cfg) if cls is ExperimentConfig else cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML experiment config, apply ``key.path=value`` overrides (later ones win), and type-check it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for item in overrides or []:
        apply_override(data, item)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def apply_override(data: dict, item: str) -> None:
    """Set ``a.b.c=value`` (value parsed as YAML) in a nested mapping."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def config_to_dict(cfg: Any) -> dict:
    """The config as plain data (for YAML and JSON)."""
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: Any) -> str:
    """The config as YAML text, in field order."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def updated(cfg: ExperimentConfig, changes: dict[str, Any]) -> ExperimentConfig:
    """A new, checked config with dotted keys set (``{"train.epochs": 3, "name": "x"}``); the config itself is frozen."""
    data = config_to_dict(cfg)
    for key, value in changes.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{key}: {part!r} is not a config section")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"{key}: unknown key (allowed: {', '.join(sorted(node))})")
        node[parts[-1]] = value
    return config_from_dict(data, type(cfg))
