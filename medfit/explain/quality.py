"""Checks of saliency maps: is the target layer's map fine enough, is the map faithful to the model (ROAD against a
random-map baseline), and does it point into a reference mask (pointing game, share of saliency mass)."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from scipy.ndimage import distance_transform_edt
from scipy.stats import wilcoxon
from torch import nn

from medfit.errors import ConfigError, DataError
from medfit.explain.cam import get_module, is_vit, vit_reshape_transform

MIN_MAP_SIDE = 7
ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
SCORES = ("logit", "probability")


def feature_map_sizes(model: nn.Module, example: torch.Tensor, names: list[str] | None = None) -> dict[str, tuple]:
    """(h, w) of the spatial output of each named layer (default: every layer with one), from forward hooks on one
    forward pass; a ViT block's (B, tokens, C) output is given as its patch grid."""
    modules = {n: get_module(model, n) for n in names} if names else dict(model.named_modules())
    reshape = vit_reshape_transform(model, example) if is_vit(model) else None
    sizes: dict[str, tuple] = {}

    def hook(name):
        def record(module, inputs, out):
            if isinstance(out, torch.Tensor) and out.ndim == 3 and reshape is not None:
                try:
                    out = reshape(out)
                except ConfigError:  # tokens without the prefix + grid layout (patch embedding, head): no map
                    return
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                sizes[name] = tuple(int(s) for s in out.shape[-2:])
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items() if n]
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in handles:
            h.remove()
    return sizes


def feature_map_size(model: nn.Module, layer: str, example: torch.Tensor) -> tuple[int, int]:
    """(h, w) of the map a Grad-CAM on ``layer`` is computed at, before upsampling to the input."""
    sizes = feature_map_sizes(model, example, [layer])
    if layer not in sizes:
        raise DataError(f"target layer {layer!r} has no spatial (B, C, H, W) output; pass another --target-layer")
    return sizes[layer]


def coarse_map_warning(map_size: tuple[int, int], input_size: tuple[int, int], layer: str = "the target layer",
                       suggestion: str | None = None, min_side: int = MIN_MAP_SIDE, vit: bool = False) -> str | None:
    """A one-line warning when the layer's map is coarser than ``min_side`` x ``min_side`` (None when fine enough)."""
    h, w = map_size
    if min(h, w) >= min_side:
        return None
    cell = f"{input_size[0] / h:.0f}x{input_size[1] / w:.0f}"
    fix = f"explain an earlier layer (e.g. --target-layer {suggestion})" if suggestion else "explain an earlier layer"
    if vit:  # every block of a ViT works on the same patch grid: no earlier layer is finer
        fix = "use a smaller patch size (model.kwargs.patch_size)"
    return (f"{layer} gives a {h}x{w} saliency map (one cell per {cell} px of the {input_size[0]}x{input_size[1]} "
            f"input), too coarse to localise findings: {fix} or train at a higher resolution")


def check_target_layer(model: nn.Module, layer: str, example: torch.Tensor, min_side: int = MIN_MAP_SIDE) -> dict:
    """The layer's map size and, when coarse, the warning naming the last layer whose map is at least min_side."""
    sizes = feature_map_sizes(model, example)
    if layer not in sizes:
        raise DataError(f"target layer {layer!r} has no spatial (B, C, H, W) output; pass another --target-layer")
    vit = is_vit(model)
    finer = [] if vit else [n for n, s in sizes.items() if min(s) >= min_side]
    warning = coarse_map_warning(sizes[layer], tuple(example.shape[-2:]), repr(layer), finer[-1] if finer else None,
                                 min_side, vit)
    return {"layer": layer, "map_size": list(sizes[layer]), "warning": warning}


def random_maps(n: int, shape: tuple[int, int], seed: int = 0, grain: int | None = None) -> np.ndarray:
    """(n, H, W) seeded random saliency maps in [0, 1]: i.i.d. per pixel, or ``grain`` x ``grain`` uniform noise
    upsampled (bilinear) to H x W, as smooth as a Grad-CAM map of that feature-map size."""
    rng = np.random.default_rng(seed)
    if grain is None:
        return rng.uniform(size=(n, *shape)).astype(np.float32)
    coarse = torch.from_numpy(rng.uniform(size=(n, 1, grain, grain))).float()
    maps = torch.nn.functional.interpolate(coarse, size=tuple(shape), mode="bilinear", align_corners=False)
    return _unit(maps[:, 0].numpy())


def rank_maps(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each map replaced by its pixel ranks scaled to [0, 1], ties broken at random (seeded)."""
    # ROAD keeps the pixels strictly below a percentile of the map: a Grad-CAM map that is 0 on 60 % of the image
    # would have its 10-50 % cuts at 0 and keep nothing (the whole image imputed); with ranks each cut is exact
    rng = np.random.default_rng(seed)
    flat = np.asarray(maps, dtype=float).reshape(len(maps), -1)
    order = np.lexsort((rng.uniform(size=flat.shape), flat), axis=-1)  # by value, ties by the random key
    ranks = np.empty_like(flat)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(flat.shape[1], dtype=float), flat.shape), axis=1)
    return (ranks / max(flat.shape[1] - 1, 1)).reshape(np.shape(maps)).astype(np.float32)


def road_scores(model: nn.Module, images: torch.Tensor, maps: np.ndarray, class_indices: list[int],
                percentiles=ROAD_PERCENTILES, seed: int = 0, score: str = "logit") -> np.ndarray:
    """Per image ROADCombined of pytorch-grad-cam on the class score: (change when the least relevant pixels are
    imputed - change when the most relevant are) / 2, averaged over ``percentiles``; higher is more faithful."""
    if score not in SCORES:
        raise ConfigError(f"faithfulness score {score!r}: expected one of {', '.join(SCORES)}")
    targets = [(ClassifierOutputTarget if score == "logit" else _ProbabilityTarget)(c) for c in class_indices]
    metric = ROADCombined(percentiles=list(percentiles))
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)  # the imputer adds torch noise
        warnings.filterwarnings("ignore", "__array_wrap__", DeprecationWarning)  # grad-cam 1.5.7: numpy on tensors
        return np.asarray(metric(images, rank_maps(maps, seed), targets, model.eval()), dtype=float)


def faithfulness(model: nn.Module, images: torch.Tensor, maps: np.ndarray, class_indices: list[int] | None = None,
                 percentiles=ROAD_PERCENTILES, grain: int = MIN_MAP_SIDE, n_random: int = 4, seed: int = 0,
                 score: str = "logit") -> dict:
    """ROAD of the maps against ``n_random`` seeded random maps per image of the same smoothness (``grain``): means,
    the paired difference (map - mean of its random maps), the share of images where the map wins, Wilcoxon p.

    ``score="logit"`` (default) measures the explained logit, which Grad-CAM explains and which does not saturate;
    ``"probability"`` the class probability, which barely moves on confidently classified images.
    """
    if np.shape(maps) != (len(images), *images.shape[-2:]):
        raise DataError(f"saliency maps of shape {np.shape(maps)} do not match images {tuple(images.shape)}")
    classes = class_indices if class_indices is not None else _explained_classes(model, images)
    real = road_scores(model, images, maps, classes, percentiles, seed, score)
    noise = random_maps(n_random * len(images), tuple(images.shape[-2:]), seed, grain)
    # a model with per-image inputs bound (clinical covariates) needs them repeated like the images
    repeated = model.repeated(n_random) if hasattr(model, "repeated") else model
    rand = road_scores(repeated, images.repeat_interleave(n_random, 0), noise, np.repeat(classes, n_random).tolist(),
                       percentiles, seed, score).reshape(len(images), n_random).mean(axis=1)
    diff = real - rand
    p = float(wilcoxon(diff).pvalue) if len(diff) > 1 and np.any(diff != 0) else None
    return {"metric": f"ROADCombined (pytorch-grad-cam), class {score}", "percentiles": list(percentiles),
            "n": len(diff), "road": float(real.mean()), "road_random": float(rand.mean()),
            "difference": float(diff.mean()), "wins": float((diff > 0).mean()), "wilcoxon_p": p,
            "random_grain": grain, "n_random": n_random, "seed": seed, "per_image": real.tolist(),
            "per_image_random": rand.tolist()}


def pointing_hits(maps: np.ndarray, masks: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Per map: 1 when its maximum lies within ``tolerance`` px of the mask, 0 when not (with tied maxima, the share
    of them that do: the expected hit of a random pick)."""
    maps, near = _check_masks(maps, masks, tolerance)
    top = maps == maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return (top & near).sum(axis=(1, 2)) / top.sum(axis=(1, 2))


def mass_in_mask(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per map: the share of its (non-negative) saliency mass inside the mask (NaN for an all-zero map)."""
    maps, inside = _check_masks(maps, masks, 0.0)
    maps = np.clip(maps, 0, None)
    total = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (maps * inside).sum(axis=(1, 2)) / total


def localisation(maps: np.ndarray, masks: np.ndarray, tolerance: float = 0.0, n_random: int = 20, seed: int = 0,
                 grain: int | None = None) -> dict:
    """Pointing-game hit rate and mean share of saliency mass inside the masks, each against ``n_random`` seeded
    random maps per image (i.i.d. pixels by default: hit rate and mass share then equal the mask's area share)."""
    maps, masks = np.asarray(maps, dtype=float), np.asarray(masks).astype(bool)
    hits, mass = pointing_hits(maps, masks, tolerance), mass_in_mask(maps, masks)
    rand = random_maps(n_random * len(maps), maps.shape[1:], seed, grain)
    rep = np.repeat(masks, n_random, axis=0)
    _, near = _check_masks(maps, masks, tolerance)
    return {"n": len(maps), "tolerance_px": tolerance, "pointing_hit_rate": float(hits.mean()),
            "pointing_hit_rate_random": float(pointing_hits(rand, rep, tolerance).mean()),
            "mass_in_mask": float(np.nanmean(mass)), "mass_in_mask_random": float(np.nanmean(mass_in_mask(rand, rep))),
            "mask_area_share": float(masks.mean()), "tolerance_area_share": float(near.mean()),
            "per_image_hits": hits.tolist(), "per_image_mass": mass.tolist(), "n_random": n_random, "seed": seed}


def _check_masks(maps, masks, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps, dtype=float), np.asarray(masks).astype(bool)
    if maps.shape != masks.shape or maps.ndim != 3:
        raise DataError(f"saliency maps {maps.shape} and masks {masks.shape} must both be (N, H, W) at the same size")
    if not masks.reshape(len(masks), -1).any(axis=1).all():
        raise DataError("a reference mask is empty; drop the images without a marked region")
    near = np.stack([distance_transform_edt(~m) <= tolerance for m in masks]) if tolerance > 0 else masks
    return maps, near


def _unit(maps: np.ndarray) -> np.ndarray:
    lo = maps.reshape(len(maps), -1).min(axis=1)[:, None, None]
    hi = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return ((maps - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def _explained_classes(model: nn.Module, images: torch.Tensor) -> list[int]:
    """The classes compute_cam explains by default: the positive output of one-output models, else the predicted."""
    with torch.no_grad():
        logits = model.eval()(images)
    return [0] * len(images) if logits.shape[1] == 1 else logits.argmax(1).tolist()


class _ProbabilityTarget(ClassifierOutputSoftmaxTarget):
    """The class probability: softmax, or the sigmoid of a one-output binary model."""

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(output[..., 0]) if output.shape[-1] == 1 else super().__call__(output)
