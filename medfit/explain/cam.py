"""Grad-CAM family maps through the grad-cam package, for CNNs and ViTs, with the target layer found automatically."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medfit.errors import ConfigError

METHODS = {
    "gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM", "xgradcam": "XGradCAM",
    "layercam": "LayerCAM", "eigencam": "EigenCAM", "scorecam": "ScoreCAM",
}


def _unwrap(model: nn.Module) -> nn.Module:
    """The timm network inside peft / medfit wrappers (for token counts and grid sizes)."""
    for attr in ("base_model", "model"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module) and inner is not model:
            return _unwrap(inner)
    return model


def _is_token_transformer(module: nn.Module) -> bool:
    return hasattr(module, "patch_embed") and hasattr(module, "blocks")


def vit_trunk(model: nn.Module) -> nn.Module | None:
    """The token transformer (timm ViT/DeiT/EVA style) of a model: the model itself, or the one inside peft / medfit
    wrappers such as the CLIP image classifier (``visual.trunk``); None for CNNs."""
    inner = _unwrap(model)
    if _is_token_transformer(inner):
        return inner
    return next((m for m in model.modules() if _is_token_transformer(m)), None)


def is_vit(model: nn.Module) -> bool:
    """True for token-based transformers with a patch embedding, bare or wrapped (LoRA, CLIP image tower)."""
    return vit_trunk(model) is not None


def token_grid(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    """The (h, w) patch grid the trunk sees for ``images``: measured at its patch embedding in one forward pass, since
    a wrapper may resize the input first (the CLIP classifier resizes to its tower's size)."""
    trunk = vit_trunk(model)
    seen: list[tuple[int, int]] = []
    handle = trunk.patch_embed.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        with torch.no_grad():
            model.eval()(images[:1])
    finally:
        handle.remove()
    grid = getattr(trunk.patch_embed, "dynamic_feat_size", None)
    return tuple(grid(seen[0])) if callable(grid) else tuple(trunk.patch_embed.grid_size)


def vit_reshape_transform(model: nn.Module, images: torch.Tensor | tuple[int, int]):
    """A grad-cam reshape transform: (B, prefix + h*w, C) tokens -> (B, C, h, w), dropping class/register tokens.

    ``images``: an example batch (the grid is measured), or the input (H, W) of a bare timm ViT."""
    trunk = vit_trunk(model)
    prefix = int(getattr(trunk, "num_prefix_tokens", 1))
    if isinstance(images, torch.Tensor):
        h, w = token_grid(model, images)
    else:
        grid = getattr(trunk.patch_embed, "dynamic_feat_size", None)
        h, w = grid(tuple(images)) if callable(grid) else trunk.patch_embed.grid_size

    def transform(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        if patches.shape[1] != h * w:
            raise ConfigError(f"ViT tokens {tokens.shape[1]} - {prefix} prefix != grid {h}x{w}; set explain target layer")
        return patches.reshape(tokens.shape[0], h, w, tokens.shape[2]).permute(0, 3, 1, 2)

    return transform


def find_target_layer(model: nn.Module, example: torch.Tensor) -> str:
    """Name of the layer to explain: a ViT's last block's first norm, else the last module with a spatial 4D output."""
    if is_vit(model):
        names = [n for n, _ in model.named_modules() if n.split(".")[-1] == "norm1" and ".blocks." in f".{n}"]
        if names:
            return names[-1]
    found: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if not name:
            continue
        def hook(mod, inp, out, name=name):
            if isinstance(out, torch.Tensor) and out.ndim == 4 and min(out.shape[-2:]) > 1:
                found.append(name)
        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in hooks:
            h.remove()
    if not found:
        raise ConfigError("no layer with a spatial (B, C, H, W) output found; pass --target-layer NAME")
    return found[-1]  # hooks fire when a module finishes, so the outermost last block comes last


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at a dotted path, with an error listing near names when it does not exist."""
    modules = dict(model.named_modules())
    if name not in modules:
        near = [n for n in modules if n.split(".")[-1] == name.split(".")[-1]][:5]
        raise ConfigError(f"target layer {name!r} not in the model; e.g. {near or list(modules)[-5:]}")
    return modules[name]


def compute_cam(model: nn.Module, images: torch.Tensor, method: str = "gradcam", target_layer: str | None = None,
                class_index: int | None = None) -> np.ndarray:
    """Saliency maps (B, H, W) in [0, 1] at input size; binary models explain the positive logit.

    ``class_index`` None: the positive class for one-output models, else each image's predicted class.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in METHODS:
        raise ConfigError(f"explain method {method!r}: choose one of {sorted(METHODS)} or 'rollout'")
    model = model.eval()
    name = target_layer or find_target_layer(model, images)
    layer = get_module(model, name)
    reshape = vit_reshape_transform(model, images) if is_vit(model) else None
    with torch.no_grad():
        logits = model(images)
    if class_index is not None:
        classes = [class_index] * len(images)
    elif logits.shape[1] == 1:
        classes = [0] * len(images)
    else:
        classes = logits.argmax(1).tolist()
    cam_cls = getattr(pytorch_grad_cam, METHODS[method])
    with cam_cls(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes])
    return np.asarray(maps, dtype=np.float32)
