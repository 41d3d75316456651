"""Value ranges of config keys: values that type-check but cannot work (``batch_size: 0``, ``epochs: -1``).

``range_problems(cfg)`` lists every key out of range, one line each, so a pre-flight check can report them all at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medfit.config.schema import ExperimentConfig


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (either end open or closed); ``whole`` for counts."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE, COUNT, AT_LEAST_1 = Range(0, low_open=True), Range(0), Range(1)
FRACTION, OPEN_FRACTION = Range(0, 1, high_open=True), Range(0, 1, True, True)
_OPTIM = {"lr": POSITIVE, "weight_decay": COUNT, "momentum": FRACTION, "warmup_epochs": COUNT,
          "min_lr_ratio": Range(0, 1), "grad_clip": COUNT, "head_lr": COUNT, "backbone_lr": COUNT}
_LORA = {"r": AT_LEAST_1, "alpha": POSITIVE, "dropout": FRACTION}


def _section(prefix: str, ranges: dict[str, Range]) -> dict[str, Range]:
    return {f"{prefix}.{k}": v for k, v in ranges.items()}


# Every numeric key whose type allows values that cannot work, with the range it must lie in.
RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1),
    "data.val_fraction": FRACTION, "data.split_seed": Range(0, 2**32 - 1), "data.image_size": Range(8),
    "data.channels": AT_LEAST_1, "data.num_workers": COUNT, "data.memory_limit_gb": COUNT, "data.limit_per_split": COUNT,
    "model.drop_rate": FRACTION, "model.cbam_reduction": AT_LEAST_1, "model.clip.image_size": COUNT,
    "model.fusion.dim": AT_LEAST_1, "model.fusion.hidden": AT_LEAST_1, "model.fusion.dropout": FRACTION,
    **_section("model.lora", _LORA),
    "train.epochs": AT_LEAST_1, "train.batch_size": AT_LEAST_1, "train.early_stopping_patience": COUNT,
    "train.label_smoothing": FRACTION, "train.ema_decay": FRACTION, "train.num_nodes": AT_LEAST_1,
    "train.max_time_minutes": COUNT, **_section("train.optim", _OPTIM),
    "train.augment.rotate_degrees": Range(0, 180),
    "train.augment.brightness": COUNT, "train.augment.contrast": COUNT,
    "evaluate.bootstrap": COUNT, "evaluate.ci_level": OPEN_FRACTION,
    "audit.near_threshold": Range(0, 255), "audit.shortcut_auc": Range(0.5, 1), "audit.workers": COUNT,
    "volume.mask_label": COUNT, "volume.neighbours": COUNT, "volume.slices": COUNT, "volume.mil_hidden": AT_LEAST_1,
    "vlm.epochs": AT_LEAST_1, "vlm.max_steps": COUNT, "vlm.batch_size": AT_LEAST_1, "vlm.grad_accum_steps": AT_LEAST_1,
    "vlm.eval_batch_size": AT_LEAST_1, **_section("vlm.optim", _OPTIM), **_section("vlm.lora", _LORA),
    "tune.pruner_startup_trials": COUNT, "tune.pruner_warmup_epochs": COUNT, "tune.heartbeat_seconds": POSITIVE,
    "pretrain.epochs": AT_LEAST_1, "pretrain.max_steps": COUNT, "pretrain.batch_size": AT_LEAST_1,
    "pretrain.mask_ratio": OPEN_FRACTION, **_section("pretrain.optim", _OPTIM),
}
# The sections a training run reads (vlm, tune and pretrain are checked by the verbs that use them).
TRAINING = ("seed", "data", "model", "train", "evaluate", "audit", "volume")
# evaluate.threshold_value by evaluate.threshold: a probability cut-off, or a target sensitivity/specificity.
THRESHOLD_VALUE = {"fixed": Range(0, 1), "sensitivity": Range(0, 1, low_open=True),
                   "specificity": Range(0, 1, low_open=True)}


def value_at(cfg: Any, key: str) -> Any:
    """The value of a dotted key in a config."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _devices(value: Any) -> bool:
    """Lightning's devices: a count >= 1, -1 (all), 'auto', or a device list such as '0,1' or '[0, 1]'."""
    if isinstance(value, int):
        return value >= 1 or value == -1
    text = value.strip()
    return text == "auto" or (text != "" and text[0] in "-0123456789[")


def _extra_problems(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """Checks that depend on another key, or on lists: (key, problem line)."""
    out = []
    e = cfg.evaluate
    if e.threshold in THRESHOLD_VALUE and not THRESHOLD_VALUE[e.threshold].holds(e.threshold_value):
        out.append(("evaluate.threshold_value", f"evaluate.threshold_value {e.threshold_value:g}: with threshold "
                    f"{e.threshold!r} it must lie in {THRESHOLD_VALUE[e.threshold]}"))
    scale = cfg.train.augment.scale
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        out.append(("train.augment.scale", f"train.augment.scale {scale}: expected [low, high] with 0 < low <= high"))
    translate = cfg.train.augment.translate  # a fraction, or [lo, hi] shift magnitudes
    t = list(translate) if isinstance(translate, (list, tuple)) else [translate]
    if not (len(t) in (1, 2) and all(FRACTION.holds(v) for v in t) and t[0] <= t[-1]):
        out.append(("train.augment.translate", f"train.augment.translate {translate!r}: expected a fraction in "
                    f"{FRACTION} or [low, high] with 0 <= low <= high < 1"))
    if not _devices(cfg.train.devices):
        out.append(("train.devices", f"train.devices {cfg.train.devices!r}: expected a count >= 1 (-1: all), a "
                    "device list or 'auto'"))
    return out


def range_problems(cfg: ExperimentConfig, sections: tuple[str, ...] = TRAINING) -> list[str]:
    """One line per key of ``sections`` whose value is out of range, naming the key, the value and the range."""
    inside = lambda key: key.split(".")[0] in sections  # noqa: E731
    problems = [f"{key} {value_at(cfg, key)!r}: expected a value in {r}" if r.high != math.inf
                else f"{key} {value_at(cfg, key)!r}: expected a value {r}"
                for key, r in RANGES.items() if inside(key) and not r.holds(value_at(cfg, key))]
    return problems + [line for key, line in _extra_problems(cfg) if inside(key)]
