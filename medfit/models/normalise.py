"""Input normalisation inside the network: the pretrained weights' own mean/std as a first module with buffers.

Being part of the network, it is saved in every checkpoint and applied identically by training, predict, explain,
ONNX export and ``load_network``. timm networks keep their class, layer names and checkpoint keys: the module is
added as ``medfit_input`` and the instance's ``forward`` normalises before the class's own forward (peft's LoRA
wrapper calls that ``forward`` too). Which numbers: those the weights were trained with (timm's pretrained_cfg,
a Hugging Face / open_clip config beside them, or the medfit run they come from). A randomly initialised network gets
no module: it learns from the recipe's output ([0, 1], or z-scores). open_clip models normalise in their own
``ClipImageInput``.
"""
from __future__ import annotations

import logging
import types

import torch
from torch import nn

from medfit.models.clip import ClipImageInput

log = logging.getLogger(__name__)

MODULE = "medfit_input"
RANDOM_INIT = "none: random init; the network learns from the recipe's output ([0, 1], or z-scores after zscore)"


class InputNormalisation(nn.Module):
    """``(x - mean) / std`` per input channel; identity until set (or loaded from a checkpoint)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.source = "identity"

    def set(self, mean: list[float], std: list[float], source: str) -> "InputNormalisation":
        """Use these per-channel values (one per input channel)."""
        with torch.no_grad():
            self.mean.copy_(torch.tensor(mean, dtype=self.mean.dtype).view_as(self.mean))
            self.std.copy_(torch.tensor(std, dtype=self.std.dtype).view_as(self.std))
        self.source = source
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _normalised_forward(self: nn.Module, x: torch.Tensor, *args, **kwargs):
    """The network's own forward on normalised input (bound to the instance; a deep copy rebinds to the copy)."""
    return type(self).forward(self, getattr(self, MODULE)(x), *args, **kwargs)


def normalise_inputs(model: nn.Module, channels: int) -> InputNormalisation:
    """Put an (identity) InputNormalisation first in ``model``; its values are set next or come from a checkpoint."""
    norm = InputNormalisation(channels)
    setattr(model, MODULE, norm)  # a submodule: its buffers join the state dict as medfit_input.mean / .std
    model.forward = types.MethodType(_normalised_forward, model)
    return norm


def per_channel(values: list[float], channels: int) -> list[float]:
    """The weights' per-channel values for ``channels`` inputs, as timm's adapt_input_conv adapts the first conv:
    one channel takes the mean (the RGB filters are summed), more channels repeat them cyclically."""
    values = [float(v) for v in values]
    if channels == 1 and len(values) > 1:
        return [sum(values) / len(values)]
    return [values[i % len(values)] for i in range(channels)]


def is_normalisation_key(key: str) -> bool:
    """Whether a state-dict key is an input-normalisation buffer."""
    return key.endswith((f"{MODULE}.mean", f"{MODULE}.std"))


def split_normalisation(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(the state without normalisation buffers, the first {'mean', 'std'} found in it, or None): a medfit run's own."""
    found = {k: v for k, v in state.items() if is_normalisation_key(k)}
    rest = {k: v for k, v in state.items() if k not in found}
    means = sorted(k for k in found if k.endswith(".mean"))
    if not means or means[0].removesuffix("mean") + "std" not in found:
        return rest, None
    return rest, {"mean": found[means[0]].flatten().tolist(), "std": found[means[0].removesuffix("mean") + "std"]
                  .flatten().tolist()}


def weights_normalisation(weights: dict, carried: dict | None, from_medfit_run: bool) -> dict:
    """The normalisation of a weight source: a medfit run's own buffers, else the weights' config (timm pretrained_cfg,
    open_clip / HF processor), else none (inputs stay as the recipe makes them), with a warning for a bare file."""
    if carried is not None:
        return {**carried, "source": f"carried from the medfit run {weights.get('source')}"}
    norm = weights.get("normalisation") or {}
    if norm.get("mean") and norm.get("std"):
        return {"mean": list(norm["mean"]), "std": list(norm["std"]), "source": f"{norm.get('from')} of "
                                                                                f"{weights.get('source')}"}
    if from_medfit_run:
        return {"source": f"none: {weights.get('source')} is a medfit run trained on the recipe's output ([0, 1])"}
    line = (f"model.pretrained {weights.get('source')}: the weights carry no input normalisation (no timm, open_clip or "
            f"Hugging Face config beside them), so inputs stay in [0, 1]; if they were trained with other mean/std, "
            f"use their timm:NAME / hf-hub: source or a `medfit weights pull ... --to DIR` folder")
    log.warning(line)
    return {"source": "none: the weights do not say (bare weight file)", "warning": line}


def apply_normalisation(model: nn.Module, channels: int, record: dict | None) -> InputNormalisation:
    """Put the normalisation of ``record`` (a load report's ``input_normalisation``; None: from a checkpoint later)
    first in a pretrained network."""
    norm = normalise_inputs(model, channels)
    if record and record.get("mean"):
        norm.set(per_channel(record["mean"], channels), per_channel(record["std"], channels), record["source"])
    elif record:
        norm.source = record["source"]
    return norm


def normalisation_records(model: nn.Module) -> list[dict]:
    """What the network does to its inputs, per normalising module: mean, std, where they come from (for the run)."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, InputNormalisation):
            out.append({"module": name, "mean": module.mean.flatten().tolist(), "std": module.std.flatten().tolist(),
                        "source": module.source})
        elif isinstance(module, ClipImageInput):
            out.append({"module": name, "mean": module.mean.flatten().tolist(), "std": module.std.flatten().tolist(),
                        "source": "open_clip preprocess_cfg of model.clip.source (RGB, its input size)"})
    return out or [{"module": "", "source": RANDOM_INIT}]
