"""timm backbones by name, with pretrained weights from any weight source, adapted by timm's helpers and counted."""
from __future__ import annotations

import logging
import sys

import timm
import torch
from timm.models import adapt_input_conv

from medfit.config import ModelConfig
from medfit.errors import WeightsError
from medfit.models.cbam import unwrap_cbam
from medfit.models.normalise import split_normalisation, weights_normalisation
from medfit.models.weights import ResolvedWeights, resolve_weights, state_dict_of, strip_prefix
from medfit.run_folder import RunFolder

log = logging.getLogger(__name__)

# The backbones the studies compared (any other timm name works too).
ZOO = {
    "resnet18": "resnet18", "resnet50": "resnet50",
    "convnext": "convnext_tiny", "efficientnetv2": "efficientnetv2_s", "mobilenetv3": "mobilenetv3_large_100",
    "vit_tiny": "vit_tiny_patch16_224", "vit_small": "vit_small_patch16_224", "vit_base": "vit_base_patch16_224",
}
# timm names an architecture's checkpoint converter checkpoint_filter_fn (densenet: the torchvision-key renamer).
FILTER_FN_NAMES = ("checkpoint_filter_fn", "_filter_torchvision_pretrained")


def timm_name(name: str) -> str:
    """The timm model name for a zoo alias (or the name itself)."""
    return ZOO.get(name, name)


def create_backbone(cfg: ModelConfig, num_outputs: int,
                    load_pretrained: bool = True) -> tuple[torch.nn.Module, dict | None]:
    """A timm model with ``num_outputs`` logits and, with ``cfg.pretrained``, the load report of its weights.

    ``model.name: hf-hub:REPO`` builds the architecture in REPO's config.json (from the HF cache, offline-capable) and
    takes REPO's weights unless ``model.pretrained`` names others.
    """
    name, hub_weights = architecture(cfg.name)
    in_chans = cfg.in_chans or 1  # 0: a ModelConfig used without a data section (one channel)
    kwargs = dict(in_chans=in_chans, num_classes=num_outputs, drop_rate=cfg.drop_rate, **cfg.kwargs)
    if cfg.drop_path_rate:  # only when asked: not every timm family takes the argument
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    try:
        model = timm.create_model(name, **kwargs)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        raise WeightsError(f"model.name {cfg.name!r}: timm cannot build it ({str(exc).strip()[:300]}); "
                           f"see timm.list_models()") from None
    source = cfg.pretrained or (hub_weights if cfg.name.startswith("hf-hub:") else "")
    if not (source and load_pretrained):
        return model, None
    resolved = resolve_weights(source)
    report = load_weights(model, resolved, in_chans, timm_name(cfg.name))
    return model, report


def architecture(name: str) -> tuple[str, str]:
    """(what timm.create_model gets, the hub source of the weights): ``hf-hub:REPO`` becomes its cached snapshot."""
    if not name.startswith("hf-hub:"):
        return timm_name(name), ""
    resolved = resolve_weights(name, key="model.name")
    if not (resolved.folder / "config.json").is_file():
        raise WeightsError(f"{name}: the snapshot {resolved.folder} has no config.json naming a timm architecture; "
                           f"use a timm repository or set model.name to the architecture and model.pretrained: {name}")
    return f"local-dir:{resolved.folder}", name


def load_weights(model: torch.nn.Module, resolved: ResolvedWeights, in_chans: int, name: str) -> dict:
    """Load a source into a timm model; refuse (one line) when fewer than half of its backbone tensors load, or when
    any has another shape after timm's adaptation (another architecture: timm's own loader refuses those too).

    Returns matched / missing / unexpected / mismatched counts (head excluded), the dropped head keys, the weights
    record (source, revision, sha256, normalisation) and the input normalisation the network should apply.
    """
    original = state_dict_of(resolved)
    original, carried = split_normalisation(original)  # a medfit run's input normalisation travels on its own
    state, cbam = unwrap_cbam(original)  # a CBAM run as the source: its CBAM loads once model.cbam inserts CBAM
    state, prefix = strip_prefix(state, model.state_dict().keys())
    state = adapt_first_conv(model, timm_filter(model, state, resolved.source), in_chans)
    report, fits = match_tensors(model, state)
    report["prefix_stripped"] = prefix
    if report["matched"] * 2 < report["backbone_tensors"] or report["mismatched"]:
        raise WeightsError(_misfit_line(resolved.path, name, report, next(iter(original)), model))
    model.load_state_dict(fits, strict=False)
    if cbam:
        model.medfit_pending_cbam = {k.removeprefix(prefix): v for k, v in cbam.items()}
        report["cbam_tensors"] = len(cbam)
    if report["missing"] or report["unexpected"]:
        log.warning("%s: %d of %d backbone tensors loaded into %s (%d missing, %d unexpected)", resolved.source,
                    report["matched"], report["backbone_tensors"], name, report["missing"], report["unexpected"])
    record = resolved.record()
    from_run = resolved.kind == "run" or RunFolder(resolved.folder or resolved.path.parent).is_run
    return {**report, "weights": record, "input_normalisation": weights_normalisation(record, carried, from_run)}


def timm_filter(model: torch.nn.Module, state: dict, source: str) -> dict:
    """timm's own checkpoint converter for this architecture (original/JAX/DINOv2/open_clip layouts, pos-embed resample)."""
    module = sys.modules[type(model).__module__]
    fn = next((getattr(module, n) for n in FILTER_FN_NAMES if hasattr(module, n)), None)
    if fn is None:
        return state
    try:
        try:
            return fn(state, model)
        except TypeError:  # one-argument converters, as timm's load_pretrained allows
            return fn(state)
    except (KeyError, RuntimeError, ValueError, IndexError, AttributeError) as exc:
        raise WeightsError(f"{source}: timm's converter for {type(model).__name__} cannot read these weights "
                           f"({type(exc).__name__}: {str(exc)[:200]}); use weights of this architecture") from None


def adapt_first_conv(model: torch.nn.Module, state: dict, in_chans: int) -> dict:
    """timm's adapt_input_conv on each first conv whose weights have other input channels (RGB summed for 1 channel)."""
    names = model.pretrained_cfg.get("first_conv") or ()
    for name in (names,) if isinstance(names, str) else names:
        key, module = f"{name}.weight", model.get_submodule(name)
        weight = state.get(key)
        if weight is None or weight.ndim != 4 or weight.shape == module.weight.shape:
            continue
        # the weights' input channels, as timm's load_pretrained checks them (space-to-depth stems included)
        base = weight.shape[1] * in_chans * module.groups // module.in_channels
        state[key] = adapt_input_conv(in_chans, weight, base_chans=base)
    return state


def head_keys(model: torch.nn.Module) -> set[str]:
    """The classifier's parameter names (timm's pretrained_cfg['classifier']), which medfit always trains anew."""
    heads = model.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else heads
    return {f"{h}.{p}" for h in heads for p in ("weight", "bias")}


def match_tensors(model: torch.nn.Module, state: dict) -> tuple[dict, dict]:
    """(counts, the tensors that fit): which of the model's backbone tensors the file provides with the right shape."""
    own, head = model.state_dict(), head_keys(model)
    fits = {k: v for k, v in state.items() if k in own and k not in head and v.shape == own[k].shape}
    report = {
        "matched": len(fits),
        "missing": sum(k not in fits for k in own if k not in head),
        "unexpected": sum(k not in own and k not in head for k in state),
        "mismatched": sum(k in own and k not in head and k not in fits for k in state),
        "backbone_tensors": sum(k not in head for k in own),
        "head_dropped": sorted(k for k in state if k in head),
    }
    return report, fits


def _misfit_line(path, name: str, report: dict, file_key: str, model: torch.nn.Module) -> str:
    """The refusal: counts plus one key of each side, so the layout difference shows."""
    model_key = next(iter(model.state_dict()), "")
    return (f"{path}: weights do not fit {name!r}: {report['matched']} of {report['backbone_tensors']} backbone "
            f"tensors load ({report['missing']} missing, {report['unexpected']} unexpected, {report['mismatched']} of "
            f"another shape; file keys look like {file_key!r}, the model's like {model_key!r}); use weights of this "
            f"architecture (timm:NAME, a run of it, or its timm Hugging Face repo)")
