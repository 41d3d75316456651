"""Small PNG thumbnails of image references as data URIs, for pages that must stand alone (no server, no files)."""
from __future__ import annotations

import base64
import html
import io
import logging

import numpy as np
from PIL import Image

from medfit.errors import MedfitError
from medfit.io import read_image

log = logging.getLogger(__name__)


def display_uint8(arr: np.ndarray) -> np.ndarray:
    """Pixels for the eye: 8-bit images as they are, others windowed to their 1st-99th percentile."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    arr = np.nan_to_num(arr.astype(np.float32))
    lo, hi = np.percentile(arr, [1, 99])
    return (np.clip((arr - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255).astype(np.uint8)


def thumbnail_uri(ref: str, size: int = 128) -> str:
    """A PNG data URI of the image at ``ref`` fitted into ``size`` pixels; '' when it cannot be read (logged)."""
    try:
        arr = display_uint8(read_image(str(ref)))
    except (MedfitError, OSError, ValueError) as exc:
        log.warning("thumbnail of %s: %s", ref, exc)
        return ""
    img = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr)
    img.thumbnail((size, size), Image.LANCZOS if max(img.size) > size else Image.NEAREST)
    if max(img.size) < size // 2:  # MedMNIST's 28 px: enlarged so a reviewer can see it
        scale = size // max(img.size)
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumbnail_tag(ref: str, caption: str = "", size: int = 128) -> str:
    """A <figure> with the thumbnail (alt text: the image reference) and a caption."""
    uri = thumbnail_uri(ref, size)
    img = f'<img src="{uri}" alt="{html.escape(str(ref))}">' if uri else "<span class=muted>(unreadable)</span>"
    return f"<figure class=thumb>{img}<figcaption>{caption}</figcaption></figure>"
