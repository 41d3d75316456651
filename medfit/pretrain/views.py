"""Batched random views on tensors: resized crops, flips and intensity jitter, one call per batch.

lightly's DINOTransform does the same per image through PIL-style transforms: about 14 ms per image for 2+4 crops on
one of these CPU cores (as long as the ViT step itself) and it rounds float images to 8 bits. Cropping a whole batch
with one ``affine_grid``/``grid_sample`` costs well under 1 ms per image and runs on the GPU when the batch is there
(``torchvision.ops.roi_align`` would too, but its compiled ops do not load beside the CPU torch wheel here).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur


def random_boxes(n: int, scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` random boxes ``(x0, y0, x1, y1)`` in [0, 1] image units, area fraction in ``scale``, aspect in ``ratio``."""
    area = torch.empty(n, device=device).uniform_(*scale)
    log_r = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    w = (area * log_r.exp()).sqrt().clamp(max=1.0)
    h = (area / log_r.exp()).sqrt().clamp(max=1.0)
    x0 = torch.rand(n, device=device) * (1 - w)
    y0 = torch.rand(n, device=device) * (1 - h)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box (image units) cropped and bilinearly resized to ``size`` x ``size``."""
    x0, y0, x1, y1 = boxes.to(images.dtype).unbind(1)
    theta = torch.zeros(len(images), 2, 3, dtype=images.dtype, device=images.device)
    # affine_grid maps output [-1, 1] onto the box in the input's [-1, 1] frame
    theta[:, 0, 0], theta[:, 0, 2] = x1 - x0, x0 + x1 - 1
    theta[:, 1, 1], theta[:, 1, 2] = y1 - y0, y0 + y1 - 1
    grid = F.affine_grid(theta, [len(images), images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_flip(images: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(len(images), device=images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def jitter_intensity(images: torch.Tensor, brightness: float = 0.2, contrast: float = 0.2, blur_p: float = 0.0,
                     sigma: tuple[float, float] = (0.1, 1.0)) -> torch.Tensor:
    """Per-image brightness shift and contrast scaling about the mean, optional Gaussian blur; clipped to [0, 1]."""
    n = len(images)
    b = torch.empty(n, 1, 1, 1, device=images.device).uniform_(-brightness, brightness)
    c = torch.empty(n, 1, 1, 1, device=images.device).uniform_(1 - contrast, 1 + contrast)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    out = ((images - mean) * c + mean + b).clamp(0, 1)
    if blur_p > 0:
        s = float(torch.empty(1).uniform_(*sigma))
        blurred = gaussian_blur(out, kernel_size=2 * math.ceil(2 * s) + 1, sigma=s)
        pick = torch.rand(n, device=images.device) < blur_p
        out = torch.where(pick[:, None, None, None], blurred, out)
    return out


def augmented_crops(images: torch.Tensor, size: int, scale: tuple[float, float], blur_p: float = 0.5) -> torch.Tensor:
    """One random resized, flipped, intensity-jittered crop of every image (a DINO view)."""
    boxes = random_boxes(len(images), scale, device=images.device)
    return jitter_intensity(random_flip(crop_resize(images, boxes, size)), 0.2, 0.3, blur_p)


def whole_patches(pixels: int, patch: int) -> int:
    """``pixels`` rounded down to a whole number of patches (at least one)."""
    return max(patch, pixels // patch * patch)
