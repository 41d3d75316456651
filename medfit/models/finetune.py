"""Fine-tuning methods: full, linear probe (frozen backbone) and LoRA through peft; head/backbone learning rates."""
from __future__ import annotations

from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from timm.layers import freeze_batch_norm_2d
from torch import nn

from medfit.config import ModelConfig, OptimConfig
from medfit.errors import ConfigError

VIT_LORA_TARGETS = ["qkv", "proj", "fc1", "fc2"]
PEFT_PREFIX = "base_model.model."


def head_paths(model: nn.Module) -> list[str]:
    """Module paths of the newly initialised head: ``model.medfit_head`` if set, else timm's classifier name."""
    paths = getattr(model, "medfit_head", None)
    if paths:
        return list(paths)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier")
    if isinstance(name, (list, tuple)):
        return list(name)
    if name:
        return [name]
    raise ConfigError(f"{type(model).__name__}: cannot tell its classifier head apart; set model.finetune: full")


def _under(name: str, paths: list[str]) -> bool:
    name = name.removeprefix(PEFT_PREFIX)
    return any(name == p or name.startswith(p + ".") for p in paths)


def _is_vit(model: nn.Module) -> bool:
    return any(n.endswith(".attn.qkv") for n, _ in model.named_modules())


def lora_target_modules(model: nn.Module, targets: list[str], keep: list[str]) -> list[str]:
    """Full paths of the Linear/Conv2d layers LoRA adapts: names ending in ``targets`` (default: ViT qkv/proj/fc1/fc2,
    else every non-depthwise conv and Linear), never inside the head or other trained-as-is modules."""
    vit = _is_vit(model)
    chosen = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)) or _under(name, keep) or "patch_embed" in name and not targets:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if targets:
            if leaf in targets or name in targets:
                chosen.append(name)
        elif vit:
            if leaf in VIT_LORA_TARGETS and isinstance(module, nn.Linear):
                chosen.append(name)
        elif isinstance(module, nn.Linear) or module.groups == 1:  # CNNs: convs (not depthwise) and MLP layers
            chosen.append(name)
    if not chosen:
        raise ConfigError(f"model.lora_targets: no Linear/Conv2d layer of {type(model).__name__} matches "
                          f"{targets or VIT_LORA_TARGETS}")
    return chosen


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients and turn BatchNorm into FrozenBatchNorm2d so the running statistics stay fixed too."""
    for p in module.parameters():
        p.requires_grad_(False)
    return freeze_batch_norm_2d(module)


def _freeze_backbone(model: nn.Module, keep: list[str]) -> None:
    for name, child in list(model.named_children()):
        if _under(name, keep):
            continue
        if any(p.startswith(name + ".") for p in keep):
            _freeze_backbone(child, [p[len(name) + 1:] for p in keep if p.startswith(name + ".")])
            for p in child.parameters(recurse=False):
                p.requires_grad_(False)
        else:
            setattr(model, name, freeze(child))
    for p in model.parameters(recurse=False):  # cls_token, pos_embed, ...
        p.requires_grad_(False)


def apply_finetune(model: nn.Module, cfg: ModelConfig, extra_trainable: list[str] = ()) -> nn.Module:
    """Apply ``cfg.finetune``: full (as is), linear (only the head and new modules train) or LoRA (peft)."""
    keep = head_paths(model) + list(extra_trainable)
    if cfg.finetune == "full":
        model.medfit_head = keep
        return model
    if cfg.finetune == "linear":
        _freeze_backbone(model, keep)
        model.medfit_head = keep
        return model
    targets = lora_target_modules(model, cfg.lora.targets, keep)
    model = _freeze_batchnorm(model, keep)
    lora = PeftLoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=targets, modules_to_save=keep)
    peft_model = get_peft_model(model, lora)
    peft_model.medfit_head = keep
    return peft_model


def _freeze_batchnorm(model: nn.Module, keep: list[str]) -> nn.Module:
    # LoRA leaves the base weights fixed; BatchNorm statistics outside the head stay fixed as well.
    for name, child in list(model.named_children()):
        if not _under(name, keep):
            setattr(model, name, freeze_batch_norm_2d(child))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """The plain network with LoRA folded into its weights, also inside wrappers (MIL encoder, covariate fusion);
    models without LoRA come back unchanged."""
    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    for name, child in list(model.named_children()):
        merged = merge_lora(child)
        if merged is not child:
            setattr(model, name, merged)
    return model


def param_groups(model: nn.Module, optim: OptimConfig) -> list[dict]:
    """Optimiser groups: the head (and new modules) at ``optim.head_lr``, the rest at ``optim.backbone_lr``
    (0: ``optim.lr``); a model without a known head is one group."""
    if not getattr(model, "medfit_head", None):
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": optim.lr, "name": "all"}]
    keep = head_paths(model)
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if _under(name.replace(".modules_to_save.default", ""), keep) else body).append(p)
    groups = [{"params": head, "lr": optim.head_lr or optim.lr, "name": "head"}]
    if body:
        groups.append({"params": body, "lr": optim.backbone_lr or optim.lr, "name": "backbone"})
    return groups
