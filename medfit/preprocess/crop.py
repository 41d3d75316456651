"""Region-of-interest crops and square resizing (plain or aspect-preserving with padding)."""
from __future__ import annotations

import cv2
import numpy as np

from medfit.errors import DataError


def mask_box(mask: np.ndarray, label: int | None = None, source: str = "mask") -> tuple[int, int, int, int]:
    """Bounding box (row0, col0, row1, col1), end-exclusive, of ``mask == label`` (any label > 0 when None)."""
    hit = (mask == label) if label else (mask > 0)
    if not np.any(hit):
        what = f"label {label}" if label else "any labelled pixel"
        present = sorted(int(v) for v in np.unique(mask) if v > 0)
        raise DataError(f"{source}: no {what} in this slice of the mask (labels present: {present or 'none'}); "
                        "pick another slice or label")
    rows, cols = np.nonzero(hit)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def expand_box(box, shape, margin: float = 0.1, square: bool = False) -> tuple[int, int, int, int]:
    """Grow a box by ``margin`` (fraction of its size) on each side, optionally to a square, clipped to the image."""
    r0, c0, r1, c1 = box
    h, w = r1 - r0, c1 - c0
    if square:
        side = max(h, w)
        rc, cc = (r0 + r1) / 2.0, (c0 + c1) / 2.0
        r0, r1, c0, c1 = rc - side / 2.0, rc + side / 2.0, cc - side / 2.0, cc + side / 2.0
        h = w = side
    r0, r1 = r0 - margin * h, r1 + margin * h
    c0, c1 = c0 - margin * w, c1 + margin * w
    rows, cols = shape[:2]
    return (max(0, int(np.floor(r0))), max(0, int(np.floor(c0))),
            min(rows, int(np.ceil(r1))), min(cols, int(np.ceil(c1))))


def crop_to_box(image: np.ndarray, box) -> np.ndarray:
    """Crop rows r0:r1 and columns c0:c1 of a 2D (or HxWxC) image."""
    r0, c0, r1, c1 = (int(v) for v in box)
    if r1 <= r0 or c1 <= c0:
        raise DataError(f"crop: empty box {list(box)} for an image of shape {image.shape[:2]}")
    return image[r0:r1, c0:c1]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size, ignoring the aspect ratio (area averaging when shrinking)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def resize_pad(image: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """Resize the longer side to ``size`` keeping the aspect ratio, then pad the shorter side equally to a square."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else image
    out = np.full((size, size) + image.shape[2:], fill, dtype=resized.dtype)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out
