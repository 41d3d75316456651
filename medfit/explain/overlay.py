"""PNG overlays: the image in grey, the saliency map in colour, the predicted probability written on it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from medfit.run_folder import atomic_write


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) float image in [0, 1] -> (H, W, 3) float RGB."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def overlay_image(image: np.ndarray, cam: np.ndarray, caption: str = "", size: int = 256, alpha: float = 0.45) -> np.ndarray:
    """(size, size, 3) uint8 RGB: the image blended with the map (jet colours), captioned at the top."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = cv2.resize(to_rgb(image), (size, size), interpolation=cv2.INTER_LINEAR)
    heat = cv2.resize(np.clip(cam, 0, 1).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    out = show_cam_on_image(rgb, heat, use_rgb=True, image_weight=1 - alpha)
    if caption:
        cv2.rectangle(out, (0, 0), (size, 22), (0, 0, 0), thickness=-1)
        cv2.putText(out, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_overlay(path: str | Path, image: np.ndarray, cam: np.ndarray, caption: str = "", size: int = 256) -> Path:
    """Write the overlay as a PNG and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path, overlay_image(image, cam, caption, size))


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """An RGB uint8 picture written as a PNG through a temporary file (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: could not encode the PNG")
    return atomic_write(path, lambda tmp: tmp.write_bytes(png.tobytes()))


def probability_caption(prob: float, class_name: str, label: str | None = None) -> str:
    """'p(PNEUMONIA) = 0.93' (+ the true label when known)."""
    text = f"p({class_name}) = {prob:.2f}"
    return f"{text}  true: {label}" if label is not None else text
