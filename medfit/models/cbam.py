"""CBAM (Woo et al. 2018): channel then spatial attention, inserted after named stages of a CNN."""
from __future__ import annotations

import torch
from timm.models._efficientnet_blocks import EdgeResidual
from timm.models.convnext import ConvNeXt
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from timm.models.resnet import ResNet
from timm.layers.cbam import CbamModule
from torch import nn

from medfit.errors import ConfigError

# timm's CbamModule is CBAM itself (shared-MLP channel attention on average and max pools, then a 7x7 conv + BN
# spatial gate); timm only wires it inside its own blocks, so medfit wraps the module it follows (WithCBAM).
CBAM = CbamModule


class WithCBAM(nn.Module):
    """A stage followed by CBAM on its output."""

    def __init__(self, stage: nn.Module, channels: int, reduction: int = 16):
        super().__init__()
        self.stage = stage
        self.cbam = CbamModule(channels, rd_channels=max(channels // reduction, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cbam(self.stage(x))


def default_cbam_positions(model: nn.Module) -> list[str]:
    """The studies' CBAM positions for a timm model: ConvNeXt after each stage, EfficientNetV2 after the
    fused-MBConv stages and after the last conv, MobileNetV3 after the last conv, ResNet after each layer."""
    if isinstance(model, ConvNeXt):
        return [f"stages.{i}" for i in range(len(model.stages))]
    if isinstance(model, EfficientNet):
        fused = [i for i, stage in enumerate(model.blocks) if any(isinstance(b, EdgeResidual) for b in stage)]
        between = [f"blocks.{fused[-1]}"] if fused and fused[-1] < len(model.blocks) - 1 else []
        return between + ["bn2"]  # bn2 = norm + activation right after conv_head, the last conv
    if isinstance(model, MobileNetV3):
        # conv_head runs on the pooled 1x1 map, so the last spatial conv is the final block.
        return [f"blocks.{len(model.blocks) - 1}"]
    if isinstance(model, ResNet):
        return ["layer1", "layer2", "layer3", "layer4"]
    raise ConfigError(f"model.cbam: no default CBAM positions for {type(model).__name__}; "
                      f"list module paths instead (e.g. model.cbam: [stages.0, stages.1])")


def unwrap_cbam(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The tensors of a network with CBAM inserted, split into the plain network's ('P.stage.X' -> 'P.X') and the
    CBAM modules' ('P.cbam.Y', kept under their names for a network that inserts CBAM at P too)."""
    positions = {k.split(".cbam.")[0] for k in state if ".cbam." in k}
    positions = {p for p in positions if any(k.startswith(f"{p}.stage.") for k in state)}
    plain, cbam = {}, {}
    for key, value in state.items():
        at = next((p for p in positions if key.startswith(f"{p}.")), None)
        if at is not None and key.startswith(f"{at}.cbam."):
            cbam[key] = value
        else:
            plain[key.replace(f"{at}.stage.", f"{at}.", 1) if at is not None else key] = value
    return plain, cbam


def load_pending_cbam(model: nn.Module) -> int:
    """Load the CBAM tensors a CBAM source left on the model (medfit.models.backbones) into the CBAM just inserted at
    the same positions; returns how many loaded (the load report records it)."""
    pending = model.__dict__.pop("medfit_pending_cbam", {})
    own = model.state_dict()
    fits = {k: v for k, v in pending.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    report = getattr(model, "medfit_load_report", None)
    if report is not None and pending:
        report["cbam_loaded"] = len(fits)
    return len(fits)


@torch.no_grad()
def _output_channels(model: nn.Module, paths: list[str], in_chans: int) -> dict[str, int]:
    """Channel count of each named module's output, from one small forward pass."""
    found: dict[str, int] = {}
    hooks = [model.get_submodule(p).register_forward_hook(
        lambda m, i, o, p=p: found.__setitem__(p, o.shape[1])) for p in paths]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, in_chans, 64, 64))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return found


def insert_cbam(model: nn.Module, positions: list[str], in_chans: int, reduction: int = 16) -> list[str]:
    """Wrap each named module (dotted path) so CBAM runs on its output; returns the new CBAM module paths."""
    if positions == ["default"]:
        positions = default_cbam_positions(model)
    for p in positions:
        try:
            model.get_submodule(p)
        except AttributeError:
            raise ConfigError(f"model.cbam: {type(model).__name__} has no module {p!r}") from None
    channels = _output_channels(model, positions, in_chans)
    for p in positions:
        parent_path, _, leaf = p.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, leaf, WithCBAM(parent.get_submodule(leaf), channels[p], reduction))
    load_pending_cbam(model)
    return [f"{p}.cbam" for p in positions]
