"""Model kinds by registry: ``model.kind`` picks a builder; volume modes wrap a 2D kind; one ``build_network``.

A builder takes (model config, number of outputs, whether to read pretrained weights) and returns a network that
maps a batch to logits (B, outputs). ``adapt`` then inserts CBAM and applies the fine-tuning method.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from medfit.config import ExperimentConfig, FusionMemberConfig, ModelConfig
from medfit.config.kinds import KIND_KEYS
from medfit.data.covariates import covariate_width
from medfit.errors import ConfigError, WeightsError
from medfit.models.backbones import create_backbone
from medfit.models.cbam import insert_cbam
from medfit.models.checkpoint import network_state, read_checkpoint
from medfit.models.clip import ClipImageClassifier, build_clip_classifier
from medfit.models.covariates import CovariateFusion
from medfit.models.finetune import apply_finetune, freeze, merge_lora
from medfit.models.fusion import FusionEnsemble
from medfit.models.normalise import apply_normalisation, is_normalisation_key
from medfit.models.sequence import SliceSequence
from medfit.models.vitdet import layout_note, windowed_vit
from medfit.models.vlm import load_vlm_run
from medfit.models.volume_models import GatedAttentionMIL, build_3d
from medfit.models.zeroshot import build_zero_shot_skeleton
from medfit.run_folder import RunFolder
from medfit.task import Task


@dataclass(frozen=True)
class Kind:
    """How to build one model kind: the network, and whether fine-tuning methods and CBAM apply to it."""

    create: Callable[[ModelConfig, int, bool], nn.Module]
    adapts: bool = True


def _timm(cfg: ModelConfig, num_outputs: int, load_pretrained: bool) -> nn.Module:
    """A timm network; with pretrained weights, their input normalisation first in it (medfit.models.normalise) and
    their load report (counts, source, hash, normalisation) along as ``medfit_load_report`` for the training record."""
    model, report = create_backbone(cfg, num_outputs, load_pretrained)
    if cfg.window_size:  # a windowed (ViTDet) encoder keeps its layout; the weights' keys are the same either way
        windowed_vit(model, cfg.window_size, cfg.global_every)
    if report is not None:
        report["layout_note"] = layout_note(cfg.pretrained, cfg.window_size, cfg.global_every)
        model.medfit_load_report = report
    if cfg.pretrained or cfg.name.startswith("hf-hub:"):  # without loading: identity, values from the checkpoint
        apply_normalisation(model, cfg.in_chans or 1, report["input_normalisation"] if report else None)
    return model


def load_report(model: nn.Module) -> dict | None:
    """The pretrained-weights load report of a built network (any wrapper around a timm network), or None."""
    for module in model.modules():
        report = getattr(module, "medfit_load_report", None)
        if report is not None:
            return report
    return None


def _monai3d(cfg: ModelConfig, num_outputs: int, load_pretrained: bool) -> nn.Module:
    return build_3d(cfg.name, cfg.in_chans, num_outputs, cfg.kwargs)


def _vlm(cfg: ModelConfig, num_outputs: int, load_pretrained: bool) -> nn.Module:
    raise ConfigError("model.kind 'vlm': vision-language models are built by `medfit vlm` from the vlm section")


KINDS: dict[str, Kind] = {
    "timm": Kind(_timm),
    "open_clip": Kind(build_clip_classifier),
    "clip_zero_shot": Kind(build_zero_shot_skeleton, adapts=False),
    "monai3d": Kind(_monai3d, adapts=False),
    "vlm": Kind(_vlm, adapts=False),
}
assert set(KINDS) | {"fusion"} == set(KIND_KEYS), "every configurable model kind has a builder"


def adapt(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    """CBAM (when configured) and the fine-tuning method (full / linear / LoRA)."""
    extra = insert_cbam(model, cfg.cbam, cfg.in_chans, cfg.cbam_reduction) if cfg.cbam else []
    return apply_finetune(model, cfg, extra)


def build_model(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> nn.Module:
    """The 2D network of ``model.kind`` (fusion members built as plain 2D networks)."""
    if not cfg.in_chans:  # a ModelConfig used on its own (no data section to follow): one channel
        cfg = dataclasses.replace(cfg, in_chans=1)
    if cfg.kind == "fusion":
        return adapt(build_fusion(cfg, num_outputs, load_pretrained), cfg)
    if cfg.kind not in KINDS:
        raise ConfigError(f"model.kind {cfg.kind!r}: expected one of {', '.join(sorted(KIND_KEYS))}")
    kind = KINDS[cfg.kind]
    model = kind.create(cfg, num_outputs, load_pretrained)
    return adapt(model, cfg) if kind.adapts else model


def strip_head(model: nn.Module) -> int:
    """Turn a classifier into a pooled-feature extractor in place; returns the feature width."""
    if isinstance(model, (GatedAttentionMIL, SliceSequence, ClipImageClassifier)):
        width = model.head.in_features
        model.head = nn.Identity()
        return int(width)
    if hasattr(model, "reset_classifier"):
        model.reset_classifier(0)
        return int(getattr(model, "head_hidden_size", None) or model.num_features)
    raise ConfigError(f"{type(model).__name__}: cannot be used as a feature extractor (no known head)")


def build_mil(cfg: ModelConfig, num_outputs: int, hidden: int, load_pretrained: bool = True,
              aggregator: str = "attention") -> nn.Module:
    """Slice sets: the 2D kind's network, headless and fine-tuned as configured, shared over slices, under
    gated-attention MIL (unordered) or an ordered GRU / transformer aggregator."""
    kind = KINDS[cfg.kind]
    encoder = kind.create(cfg, num_outputs, load_pretrained)
    width = strip_head(encoder)
    encoder = adapt(encoder, cfg) if kind.adapts else encoder
    if aggregator != "attention":
        return SliceSequence(encoder, width, num_outputs, aggregator, hidden)
    return GatedAttentionMIL(encoder, width, num_outputs, hidden)


def build_network(cfg: ExperimentConfig, num_outputs: int, load_pretrained: bool = True,
                  covariates: int = 0) -> nn.Module:
    """The network of an experiment: ``model.kind`` in the input shape of ``volume.mode`` (logits out); with
    ``covariates`` > 0 encoded covariate features, the headless network fused late with them."""
    v, m = cfg.volume, cfg.model
    if covariates:
        return build_covariate_fusion(cfg, num_outputs, covariates, load_pretrained)
    if m.kind == "fusion":  # members bring their own input handling (run members: their volume mode)
        return adapt(build_fusion(m, num_outputs, load_pretrained, v), m)
    if v.mode == "2.5d":
        return build_model(dataclasses.replace(m, in_chans=2 * v.neighbours + 1), num_outputs, load_pretrained)
    if v.mode == "slice_set":
        return build_mil(dataclasses.replace(m, in_chans=1), num_outputs, v.mil_hidden, load_pretrained, v.aggregator)
    if v.mode == "3d":
        return build_model(dataclasses.replace(m, in_chans=1), num_outputs, load_pretrained)
    return build_model(m, num_outputs, load_pretrained)


def build_covariate_fusion(cfg: ExperimentConfig, num_outputs: int, covariates: int,
                           load_pretrained: bool = True) -> CovariateFusion:
    """The image network of ``cfg`` without its head (fine-tuned as configured) under the covariate fusion MLP."""
    v, m = cfg.volume, cfg.model  # kinds and modes checked when the config loads (config.kinds.check_covariates)
    if v.mode == "slice_set":
        image = build_mil(dataclasses.replace(m, in_chans=1), num_outputs, v.mil_hidden, load_pretrained,
                          v.aggregator)
        width = strip_head(image)
    else:
        kind = KINDS[m.kind]
        m = dataclasses.replace(m, in_chans=2 * v.neighbours + 1) if v.mode == "2.5d" else m
        image = kind.create(m, num_outputs, load_pretrained)
        width = strip_head(image)
        image = adapt(image, m)
    c = cfg.covariates
    return CovariateFusion(image, width, covariates, num_outputs, c.hidden, c.dropout)


def build_fusion(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True, volume=None) -> FusionEnsemble:
    """The feature-fusion ensemble of ``model.fusion``: each member a run's network or a timm network, headless."""
    f = cfg.fusion
    if len(f.members) < 2:
        raise ConfigError("model.fusion.members: list at least two members (run: FOLDER or name: TIMM_NAME)")
    built = [_fusion_member(m, cfg, load_pretrained, volume) for m in f.members]
    members = [freeze(net) if m.freeze else net for (net, _), m in zip(built, f.members)]
    return FusionEnsemble(members, [w for _, w in built], num_outputs, f.dim, f.hidden, f.dropout)


def _fusion_member(member: FusionMemberConfig, cfg: ModelConfig, load_pretrained: bool, volume) -> tuple[nn.Module, int]:
    """One member as (headless network, feature width)."""
    if member.run:
        run = RunFolder(member.run)
        if not run.is_run:
            raise WeightsError(f"{member.run}: not a run folder (no config); train the member first (medfit train CONFIG)")
        member_cfg = run.read_config()
        _check_member_input(member.run, member_cfg, cfg, volume)
        net = merge_lora(load_network(run) if load_pretrained else _network_of(member_cfg))
    elif member.name:
        chans = 2 * volume.neighbours + 1 if volume is not None and volume.mode == "2.5d" else cfg.in_chans
        if volume is not None and volume.mode in ("slice_set", "3d"):
            raise ConfigError(f"model.fusion.members: {member.name!r}: in volume.mode {volume.mode!r} every member "
                              "is a trained run folder of that mode (run: FOLDER)")
        net = _timm(ModelConfig(name=member.name, pretrained=member.pretrained, in_chans=chans), 1, load_pretrained)
    else:
        raise ConfigError("model.fusion.members: each member needs a run folder (run:) or a timm name (name:)")
    return net, strip_head(net)


def _check_member_input(where: str, member_cfg: ExperimentConfig, cfg: ModelConfig, volume) -> None:
    """A run member must take the fusion's input: same channels and the same volume mode."""
    mode = volume.mode if volume is not None else "slice"
    if member_cfg.volume.mode != mode:
        raise ConfigError(f"model.fusion: run {where} was trained with volume.mode {member_cfg.volume.mode!r}; "
                          f"the fusion runs in {mode!r}: set volume to the members' mode")
    if mode == "slice" and member_cfg.model.in_chans != cfg.in_chans:
        raise ConfigError(f"model.fusion: run {where} takes {member_cfg.model.in_chans} channel(s) but "
                          f"model.in_chans is {cfg.in_chans}")


def _network_of(cfg: ExperimentConfig, covariates: int = 0) -> nn.Module:
    """A run config's network with no weights read (a checkpoint is loaded next)."""
    return build_network(cfg, Task.of(cfg.data).num_outputs, load_pretrained=False, covariates=covariates)


def run_covariates(run: RunFolder) -> dict | None:
    """The covariate encoder a run was trained with (None for an image-only run)."""
    return run.read_json_or("covariates")


def load_network(run: RunFolder, which: str = "best") -> nn.Module:
    """Any run's trained network (timm, fusion, CLIP, zero-shot, volume modes), from its config and checkpoint."""
    cfg = run.read_config()
    if cfg.model.kind == "vlm":
        return load_vlm_run(run, which)
    state = network_state(read_checkpoint(run.checkpoint(which)), run.checkpoint(which))
    model = _network_of(cfg, covariate_width(run_covariates(run)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # runs trained before medfit normalised inputs have no such buffers: identity, as they were trained
    missing = [k for k in missing if not is_normalisation_key(k)]
    if missing or unexpected:
        raise WeightsError(f"{run.checkpoint(which)}: does not fit the network of {run.path}'s config "
                           f"({len(missing)} missing, {len(unexpected)} unexpected tensors, e.g. "
                           f"{(missing or unexpected)[0]}); was the config edited after training?")
    return model.eval()
