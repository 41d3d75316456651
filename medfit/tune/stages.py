"""The staged plan: which parameters each stage searches, over which ranges, from which starting config."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna.distributions as od

from medfit.config import ExperimentConfig, TuneStage
from medfit.errors import ConfigError
from medfit.tune.space import ParamSpec, distribution, get_value, narrowed, parse_space

LORA_KEYS = ("model.lora.r",)


def uses_lora(cfg: ExperimentConfig) -> bool:
    """Whether the model is fine-tuned with LoRA adapters (only then is the LoRA rank searched)."""
    return getattr(cfg.model, "finetune", "") == "lora"


def check_plan(cfg: ExperimentConfig) -> list[TuneStage]:
    """The configured stages, checked: unique names, declared and existing parameters, sensible budgets."""
    stages = cfg.tune.stages
    if not stages:
        raise ConfigError("tune.stages: the plan is empty; declare at least one stage or leave tune.stages out")
    space = parse_space(cfg.tune)
    names = [s.name for s in stages]
    for i, stage in enumerate(stages):
        path = f"tune.stages[{i}]"
        if not stage.name or not stage.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{path}.name: give each stage a short name of letters, digits, - or _ (got {stage.name!r})")
        if names.count(stage.name) > 1:
            raise ConfigError(f"{path}.name: {stage.name!r} is used by two stages; stage names must be unique")
        if stage.seeds < 0 or stage.trials < 0 or stage.epochs < 0:
            raise ConfigError(f"{path}: trials, epochs and seeds must be >= 0")
        if stage.seeds and stage.params:
            raise ConfigError(f"{path}: a seed stage (seeds > 0) searches nothing; remove its params")
        if not stage.seeds and (not stage.params or stage.trials < 1):
            raise ConfigError(f"{path}: a search stage needs params and trials >= 1 (or set seeds > 0)")
        for key in stage.params:
            if key not in space:
                raise ConfigError(f"{path}.params: {key!r} is not declared in tune.space; add "
                                  f"tune.space.{key}: {{type: float, low: .., high: ..}}")
            if key not in LORA_KEYS or uses_lora(cfg):
                get_value(cfg, key)
        for key, factor in stage.narrow.items():
            if key not in stage.params:
                raise ConfigError(f"{path}.narrow: {key!r} is not one of this stage's params")
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
                raise ConfigError(f"{path}.narrow.{key}: expected a factor > 1 (3 searches [best/3, best*3]), got {factor!r}")
    return stages


@dataclass
class StagePlan:
    """One stage made concrete: its Optuna distributions and the config its trials start from."""

    index: int
    stage: TuneStage
    base: ExperimentConfig  # the user's config with the previous stages' best values applied
    distributions: dict[str, Any]  # config key -> optuna distribution
    start: dict[str, Any]  # the base config's values of the searched params, when inside the ranges (first trial)

    @property
    def is_seed_stage(self) -> bool:
        return self.stage.seeds > 0

    def seeds(self) -> list[int]:
        """The seeds of a seed stage: the config's seed and the next ones."""
        return [self.base.seed + i for i in range(self.stage.seeds)]

    @property
    def budget(self) -> int:
        """Finished trials this stage needs."""
        return self.stage.seeds or self.stage.trials


def plan_stage(cfg: ExperimentConfig, index: int, base: ExperimentConfig) -> StagePlan:
    """Distributions for stage ``index``, narrowed around ``base`` (which carries the previous stages' best)."""
    stage = cfg.tune.stages[index]
    space = parse_space(cfg.tune)
    dists: dict[str, Any] = {}
    start: dict[str, Any] = {}
    for key in stage.params:
        if key in LORA_KEYS and not uses_lora(cfg):
            continue
        spec: ParamSpec = space[key]
        current = get_value(base, key)
        if key in stage.narrow:
            low, high = narrowed(spec, float(current), float(stage.narrow[key]), key)
            dist = distribution(spec, low, high)
        else:
            dist = distribution(spec)
        dists[key] = dist
        if _contains(dist, current):
            start[key] = current
    return StagePlan(index, stage, base, dists, start)


def _contains(dist, value: Any) -> bool:
    if isinstance(dist, od.CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dist, od.IntDistribution) and not float(value).is_integer():
        return False
    return dist.low <= value <= dist.high
