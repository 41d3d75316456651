"""The search space: YAML parameter declarations -> Optuna distributions, and applying sampled values to a config."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna.distributions as od

from medfit.config import ExperimentConfig, TuneConfig, config_from_dict, default_tune_space, updated
from medfit.errors import ConfigError


@dataclass
class ParamSpec:
    """One searched hyperparameter as declared under ``tune.space.<config key>``."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float = 0.0  # >0: a stepped (discrete) float or int range
    choices: list[Any] = field(default_factory=list)


def parse_space(tune: TuneConfig) -> dict[str, ParamSpec]:
    """The built-in space updated with the YAML's ``tune.space`` entries, each checked."""
    declared = {**default_tune_space(), **tune.space}
    space = {}
    for key, raw in declared.items():
        path = f"tune.space.{key}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping like {{type: float, low: 1e-5, high: 1e-1, log: true}}")
        # YAML 1.1 reads 1e-5 (no dot) as a string; accept it as the number it plainly is
        raw = {k: _number(v) if k in ("low", "high", "step") else v for k, v in raw.items()}
        try:
            spec = config_from_dict(raw, ParamSpec)
        except ConfigError as exc:
            raise ConfigError(f"{path}.{exc}") from None
        if spec.type == "categorical":
            if not spec.choices:
                raise ConfigError(f"{path}: a categorical parameter needs a non-empty 'choices' list")
        else:
            if not spec.low < spec.high:
                raise ConfigError(f"{path}: needs low < high, got low={spec.low} high={spec.high}")
            if spec.log and spec.low <= 0:
                raise ConfigError(f"{path}: a log-scale range needs low > 0, got {spec.low}")
            if spec.log and spec.step:
                raise ConfigError(f"{path}: choose either log: true or a step, not both")
            if spec.type == "int" and not (float(spec.low).is_integer() and float(spec.high).is_integer()):
                raise ConfigError(f"{path}: an int parameter needs whole-number low and high")
        space[key] = spec
    return space


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def distribution(spec: ParamSpec, low: float | None = None, high: float | None = None):
    """The Optuna distribution of a parameter, optionally over a narrower [low, high]."""
    if spec.type == "categorical":
        return od.CategoricalDistribution(list(spec.choices))
    low = spec.low if low is None else low
    high = spec.high if high is None else high
    if spec.type == "int":
        return od.IntDistribution(int(round(low)), int(round(high)), log=spec.log, step=int(spec.step or 1))
    return od.FloatDistribution(low, high, log=spec.log, step=spec.step or None)


def narrowed(spec: ParamSpec, center: float, factor: float, key: str) -> tuple[float, float]:
    """[center/factor, center*factor] (log ranges) clipped to the declared range."""
    if spec.type == "categorical":
        raise ConfigError(f"tune.stages[].narrow.{key}: only float and int parameters can be narrowed")
    if not factor > 1:
        raise ConfigError(f"tune.stages[].narrow.{key}: the factor must be > 1, got {factor}")
    if center <= 0:
        raise ConfigError(f"tune.stages[].narrow.{key}: the previous best {center} is not positive")
    low, high = max(spec.low, center / factor), min(spec.high, center * factor)
    if spec.type == "int":
        low, high = math.floor(low), math.ceil(high)
    return low, high


def get_value(cfg: ExperimentConfig, key: str) -> Any:
    """The config's value at a dotted key such as ``train.lr``."""
    node: Any = cfg
    for part in key.split("."):
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
            raise ConfigError(f"tune.space.{key}: no such config key ({part!r} is not a field)")
        node = getattr(node, part)
    return node


def with_params(cfg: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """A checked copy of the config with dotted-key values set (types are verified by the config loader)."""
    for key in params:
        get_value(cfg, key)
    try:
        return updated(cfg, params)
    except ConfigError as exc:
        raise ConfigError(f"tune.space: a sampled value does not fit the config ({exc}); fix the parameter's type") from None


__all__ = ["ParamSpec", "parse_space", "distribution", "narrowed", "get_value", "with_params"]
