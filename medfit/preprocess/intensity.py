"""Intensity operations: CT windows, quantile clipping, min-max and z-score scaling."""
from __future__ import annotations

import numpy as np

from medfit.errors import DataError

# (centre, width) in HU; common radiology presets.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "soft_tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
}


def resolve_window(preset: str = "", center: float | None = None, width: float | None = None,
                   meta: dict | None = None) -> tuple[float, float]:
    """(centre, width) from a preset name, explicit values, or ``preset='file'`` (the DICOM's own WindowCenter/Width)."""
    if center is not None and width is not None:
        c, w = float(center), float(width)
    elif preset == "file":
        meta = meta or {}
        if meta.get("window_center") is None or meta.get("window_width") is None:
            raise DataError(f"{meta.get('source', 'image')}: window preset 'file' but the file has no "
                            "WindowCenter/WindowWidth; use a preset (brain, soft_tissue, bone, lung) or center/width")
        c, w = float(meta["window_center"]), float(meta["window_width"])
    elif preset in WINDOW_PRESETS:
        c, w = WINDOW_PRESETS[preset]
    else:
        raise DataError(f"window: unknown preset {preset!r}; use one of {', '.join(WINDOW_PRESETS)}, 'file', "
                        "or give center and width")
    if w <= 0:
        raise DataError(f"window: width must be > 0, got {w}")
    return c, w


def apply_window(image: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map [centre - width/2, centre + width/2] linearly to [0, 1], clipping outside."""
    low = center - width / 2.0
    return np.clip((image.astype(np.float32) - low) / float(width), 0.0, 1.0)


def clip_quantiles(image: np.ndarray, low: float = 5.0, high: float = 95.0, mask: np.ndarray | None = None) -> np.ndarray:
    """Clip intensities to their [low, high] percentiles (computed inside ``mask`` when given)."""
    if not 0.0 <= low < high <= 100.0:
        raise DataError(f"clip: need 0 <= low < high <= 100, got low={low} high={high}")
    values = image[mask > 0] if mask is not None and np.any(mask > 0) else image
    lo, hi = np.percentile(values, [low, high])
    return np.clip(image, lo, hi).astype(np.float32)


def minmax(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant image becomes all zeros instead of dividing by zero."""
    image = image.astype(np.float32)
    lo, hi = float(image.min()), float(image.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.zeros_like(image)
    return (image - lo) / (hi - lo)


def zscore(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Zero mean, unit variance (statistics inside ``mask`` when given); a constant image becomes zeros."""
    image = image.astype(np.float32)
    values = image[mask > 0] if mask is not None and np.any(mask > 0) else image
    sd = float(values.std())
    if sd <= 1e-12:
        return np.zeros_like(image)
    return (image - float(values.mean())) / sd


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: uint8 divided by 255, values already in [0, 1] kept, anything else min-max scaled."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32, copy=False)
    lo, hi = float(image.min()), float(image.max())
    if lo >= 0.0 and hi <= 1.0:
        return image
    return minmax(image)
