"""Local contrast: CLAHE (OpenCV) and unsharp masking."""
from __future__ import annotations

import cv2
import numpy as np

from medfit.preprocess.intensity import to_unit_range


def clahe(image: np.ndarray, clip: float = 2.5, grid: int = 4) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on a 2D image; returns float32 in [0, 1]."""
    unit = to_unit_range(image)
    as16 = np.round(unit * 65535.0).astype(np.uint16)  # 16 bit keeps the precision of float and 12-bit inputs
    out = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(grid), int(grid))).apply(as16)
    return out.astype(np.float32) / 65535.0


def unsharp_mask(image: np.ndarray, sigma: float = 1.0, amount: float = 2.0) -> np.ndarray:
    """Sharpen: image + amount * (image - gaussian(image, sigma)), clipped to the input's range."""
    image = image.astype(np.float32)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))
    out = image + float(amount) * (image - blurred)
    return np.clip(out, float(image.min()), float(image.max()))
