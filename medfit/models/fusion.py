"""Feature-fusion ensemble: several backbones' pooled features, projected, concatenated, normalised, MLP head."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from medfit.config import FusionMemberConfig, ModelConfig
from medfit.errors import ConfigError, WeightsError
from medfit.models.weights import read_state_dict


def pooled_width(model: nn.Module) -> int:
    """Width of a timm model's pooled features once its classifier is removed (after any pre-logits conv/MLP)."""
    return getattr(model, "head_hidden_size", None) or model.num_features


class FusionEnsemble(nn.Module):
    """Members -> pooled features -> Linear to ``dim`` each -> concat -> LayerNorm -> dropout -> MLP -> logits."""

    def __init__(self, members: list[nn.Module], num_outputs: int, dim: int = 768, hidden: int = 256,
                 dropout: float = 0.3):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.projections = nn.ModuleList(nn.Linear(pooled_width(m), dim) for m in members)
        self.norm = nn.LayerNorm(dim * len(members))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(dim * len(members), hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_outputs))
        self.medfit_head = ["projections", "norm", "head"]

    def fused_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised concatenation of every member's projected features, ``(B, dim * members)``."""
        return self.norm(torch.cat([proj(m(x)) for m, proj in zip(self.members, self.projections)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.fused_features(x)))


def load_run_network(run_dir: str | Path, load_weights: bool = True) -> tuple[nn.Module, ModelConfig]:
    """A trained run's network (LoRA merged) and its model config, from config.yaml and checkpoints/best.ckpt."""
    from medfit.config import load_config
    from medfit.models import build_model
    from medfit.models.finetune import merge_lora
    from medfit.train.checkpoint import num_outputs_of

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise WeightsError(f"{run_dir}: not a run folder (no config.yaml); train the member first (medfit train CONFIG)")
    run_cfg = load_config(run_dir / "config.yaml")
    model = build_model(run_cfg.model, num_outputs_of(run_cfg), load_pretrained=False)
    if load_weights:
        ckpt = run_dir / "checkpoints" / "best.ckpt"
        if not ckpt.is_file():
            raise WeightsError(f"{ckpt}: checkpoint not found; train the member run first (medfit train CONFIG)")
        state = read_state_dict(ckpt)  # safetensors / weights_only=True: a checkpoint file cannot run code
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return merge_lora(model), run_cfg.model


def build_member(member: FusionMemberConfig, cfg: ModelConfig, load_pretrained: bool) -> nn.Module:
    """One fusion member as a pooled-feature extractor (``num_features`` wide)."""
    from medfit.models.backbones import create_backbone
    from medfit.models.finetune import freeze

    if member.run:
        model, member_cfg = load_run_network(member.run, load_weights=load_pretrained)
        if member_cfg.in_chans != cfg.in_chans:
            raise ConfigError(f"model.fusion: run {member.run} takes {member_cfg.in_chans} channel(s) but "
                              f"model.in_chans is {cfg.in_chans}")
    elif member.name:
        member_cfg = ModelConfig(name=member.name, pretrained=member.pretrained, in_chans=cfg.in_chans)
        model, _ = create_backbone(member_cfg, 1, load_pretrained)
    else:
        raise ConfigError("model.fusion: each member needs a run folder (run:) or a timm name (name:)")
    if not hasattr(model, "reset_classifier"):
        raise ConfigError(f"model.fusion: member {member.run or member.name} is not a timm network")
    model.reset_classifier(0)
    return freeze(model) if member.freeze else model


def build_fusion(cfg: ModelConfig, num_outputs: int, load_pretrained: bool = True) -> FusionEnsemble:
    """The feature-fusion ensemble described by ``cfg.fusion``."""
    if len(cfg.fusion) < 2:
        raise ConfigError("model.fusion: list at least two members (run: FOLDER or name: TIMM_NAME)")
    members = [build_member(m, cfg, load_pretrained) for m in cfg.fusion]
    return FusionEnsemble(members, num_outputs, cfg.fusion_dim, cfg.fusion_hidden, cfg.fusion_dropout)
