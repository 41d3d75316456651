"""Cross-section checks of a loaded config: the keys each model kind uses, volume modes, input channels."""
from __future__ import annotations

import dataclasses
from typing import Any

from medfit.config.evidence_checks import check_evidence
from medfit.config.schema import ExperimentConfig, ModelConfig
from medfit.errors import ConfigError

# The model keys each kind reads ("clip.source": one key of a subsection, "clip": all of it). A key a kind does not
# read is an error when it differs from its default, so that nothing a user sets is silently ignored.
_TRAINABLE = {"kind", "in_chans", "finetune", "lora"}
KIND_KEYS: dict[str, set[str]] = {
    "timm": _TRAINABLE | {"name", "pretrained", "drop_rate", "drop_path_rate", "kwargs", "cbam", "cbam_reduction",
                          "window_size", "global_every"},
    "fusion": _TRAINABLE | {"fusion"},
    "open_clip": _TRAINABLE | {"clip.source", "clip.cache_dir", "clip.image_size"},
    "clip_zero_shot": {"kind", "in_chans", "clip"},
    "monai3d": {"kind", "in_chans", "name", "kwargs"},
    "vlm": {"kind", "in_chans"},
}
# Volume modes and the model kinds they can wrap.
MODE_KINDS = {
    "slice": {"timm", "fusion", "open_clip", "clip_zero_shot", "vlm"},
    "2.5d": {"timm", "fusion"},
    "slice_set": {"timm", "open_clip", "fusion"},  # fusion: of runs trained in this mode
    "3d": {"monai3d", "fusion"},
}
# Model kinds whose image network can be fused late with clinical covariates (medfit.models.covariates).
COVARIATE_KINDS = {"timm", "open_clip"}
# model.name values that were model kinds before model.kind existed
FORMER_KIND_NAMES = {"fusion": "fusion", "open_clip": "open_clip", "biomedclip": "open_clip",
                     "clip_zero_shot": "clip_zero_shot"}


def set_keys(section: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the fields whose value differs from the default (one level into nested sections)."""
    out = []
    default = type(section)()
    for f in dataclasses.fields(section):
        value, base = getattr(section, f.name), getattr(default, f.name)
        if value == base:
            continue
        if dataclasses.is_dataclass(value):
            out += set_keys(value, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def _used(key: str, allowed: set[str]) -> bool:
    return key in allowed or key.split(".")[0] in allowed


def check_model_keys(model: ModelConfig) -> None:
    """Refuse a model key the chosen kind does not read, naming the key and what the kind uses."""
    if model.kind == "timm" and model.name in FORMER_KIND_NAMES:
        raise ConfigError(f"model.name {model.name!r}: this is a model kind now; set model.kind: "
                          f"{FORMER_KIND_NAMES[model.name]}")
    allowed = KIND_KEYS[model.kind]
    for key in set_keys(model):
        if not _used(key, allowed):
            raise ConfigError(f"model.{key}: not used by model.kind {model.kind!r} (it reads "
                              f"{', '.join(sorted(allowed))}); remove the key or change model.kind")
        if key.startswith("lora.") and model.finetune != "lora":
            raise ConfigError(f"model.{key}: only used with model.finetune: lora (finetune is {model.finetune!r})")


def check_volume_mode(cfg: ExperimentConfig) -> None:
    """Refuse a volume mode that cannot wrap the model kind."""
    mode, kind = cfg.volume.mode, cfg.model.kind
    if kind not in MODE_KINDS[mode]:
        raise ConfigError(f"volume.mode {mode!r} with model.kind {kind!r}: this mode takes model.kind "
                          f"{' or '.join(sorted(MODE_KINDS[mode]))}")
    if kind == "monai3d" and mode != "3d":
        raise ConfigError("model.kind 'monai3d' is a 3D network: set volume.mode: 3d")
    v = cfg.volume
    if v.aggregator != "attention" and mode != "slice_set":
        raise ConfigError(f"volume.aggregator {v.aggregator!r}: aggregates slice embeddings in volume.mode slice_set "
                          f"(mode is {mode!r})")
    if v.stride and mode not in ("slice_set", "3d"):
        raise ConfigError(f"volume.stride {v.stride}: samples slices for volume.mode slice_set or 3d (mode is {mode!r})")
    if v.stride < 0:
        raise ConfigError(f"volume.stride {v.stride}: give a slice step >= 1, or 0 to spread the slices over the study")


def resolve_channels(cfg: ExperimentConfig) -> ExperimentConfig:
    """``model.in_chans`` follows ``data.channels``; a different explicit value is an error."""
    m, d = cfg.model, cfg.data
    if m.in_chans and m.in_chans != d.channels:
        raise ConfigError(f"model.in_chans {m.in_chans} differs from data.channels {d.channels}; the model takes "
                          "the images as prepared: set data.channels (and leave model.in_chans out)")
    if m.in_chans == d.channels:
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(m, in_chans=d.channels))


def check_covariates(cfg: ExperimentConfig) -> None:
    """Covariates need a model kind and volume mode late fusion can wrap, and each column listed once."""
    c = cfg.covariates
    if not (c.numeric or c.categorical):
        return
    both = sorted(set(c.numeric) & set(c.categorical))
    if both or len(set(c.numeric)) < len(c.numeric) or len(set(c.categorical)) < len(c.categorical):
        raise ConfigError(f"covariates: list each column once, as numeric or categorical (repeated: "
                          f"{both or 'within one list'})")
    if cfg.model.kind not in COVARIATE_KINDS or cfg.volume.mode == "3d":
        raise ConfigError(f"covariates: late fusion takes model.kind {' or '.join(sorted(COVARIATE_KINDS))} in "
                          f"volume.mode slice, 2.5d or slice_set (got {cfg.model.kind!r} in {cfg.volume.mode!r})")
    a = cfg.train.augment
    if a.mixup or a.cutmix:  # timm's Mixup mixes images only; the covariates would stay with the wrong image
        raise ConfigError("covariates: train.augment.mixup / cutmix mix images but not their covariates; set both to 0 "
                          "for a run with covariates")


def check_experiment(cfg: ExperimentConfig) -> ExperimentConfig:
    """All cross-section checks of an experiment config; returns it with derived values filled in."""
    check_model_keys(cfg.model)
    check_volume_mode(cfg)
    check_covariates(cfg)
    check_evidence(cfg)
    return resolve_channels(cfg)
