"""Checks of the evidence keys (evaluate.conformal_*, decision_thresholds, tta, mc_dropout; train.seeds) at load time,
so that a bad value stops the run before training instead of after it."""
from __future__ import annotations

import re

from medfit.config.schema import ExperimentConfig
from medfit.errors import ConfigError

TTA_VIEWS = ("hflip", "vflip", "shift", "augment")


def check_evidence(cfg: ExperimentConfig) -> None:
    """ConfigError naming the first evaluate/train evidence key whose value cannot work."""
    e, seeds = cfg.evaluate, cfg.train.seeds
    if not 0 <= e.conformal_alpha < 1:
        raise ConfigError(f"evaluate.conformal_alpha {e.conformal_alpha}: expected an error rate in (0, 1), e.g. 0.1, "
                          "or 0 to disable")
    if len(e.decision_thresholds) != 3 or not 0 < e.decision_thresholds[0] <= e.decision_thresholds[1] < 1 \
            or e.decision_thresholds[2] <= 0:
        raise ConfigError(f"evaluate.decision_thresholds {e.decision_thresholds}: expected [start, stop, step] with "
                          "0 < start <= stop < 1 and step > 0, e.g. [0.01, 0.5, 0.01]")
    if any(not 0 < r < 1 for r in e.referral_rates):
        raise ConfigError(f"evaluate.referral_rates {e.referral_rates}: each rate must lie in (0, 1), e.g. [0.05, 0.1]")
    if not 0 < e.target_auc_halfwidth < 0.5:
        raise ConfigError(f"evaluate.target_auc_halfwidth {e.target_auc_halfwidth}: expected a value in (0, 0.5)")
    unknown = [v for v in e.tta if v not in TTA_VIEWS]
    if unknown:
        raise ConfigError(f"evaluate.tta: unknown view(s) {unknown}; use any of {', '.join(TTA_VIEWS)}")
    if e.mc_dropout < 0 or e.mc_dropout == 1 or e.tta_samples < 1 or not 0 < e.tta_strength <= 1:
        raise ConfigError(f"evaluate.mc_dropout {e.mc_dropout} / tta_samples {e.tta_samples} / tta_strength "
                          f"{e.tta_strength}: mc_dropout is 0 (off) or at least 2 passes, tta_samples at least 1, "
                          "tta_strength in (0, 1]")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"train.seeds {seeds}: each ensemble member needs its own seed")
    for name, pattern in e.subgroup_patterns.items():
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(f"evaluate.subgroup_patterns.{name}: {pattern!r} is not a regular expression ({exc})") \
                from None
