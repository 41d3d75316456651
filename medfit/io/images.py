"""Plain image files (PNG, JPEG, BMP, TIFF) read with Pillow.

Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays False: a truncated file is an error, never an image filled with grey.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medfit.errors import DataError
from medfit.io.checks import describe_content, first_line, require_finite, sniff

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
FIX = "remove or replace the file"


def is_image_file(path: str | Path) -> bool:
    """True when the suffix is one Pillow reads as a plain image."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def open_image(path: str | Path) -> Image.Image:
    """Open an image file lazily (pixels not yet decoded); errors name the file."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found; check the manifest path") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image header claims an implausible size ({first_line(exc)}); {FIX}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        found = sniff(path)
        if found and found[0] not in ("PNG image", "JPEG image", "TIFF image", "BMP image"):
            raise DataError(f"{path}: not an image file but a {found[0]}; {found[1]}") from None
        raise DataError(f"{path}: not a readable image ({describe_content(path)}), corrupt or truncated "
                        f"({first_line(exc)}); {FIX}") from None


def to_array(img: Image.Image, path: str | Path) -> np.ndarray:
    """Decode a Pillow image to HxW (grayscale) or HxWx3 uint8; 16-bit and float modes are kept as they are."""
    try:
        if img.mode in ("1", "L", "P", "LA", "PA"):
            img = img.convert("L") if img.mode != "L" else img
        elif img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(img)
            return require_finite(arr.astype(np.float32), path) if arr.dtype.kind == "f" else arr
        elif img.mode != "RGB":
            img = img.convert("RGB")
        return np.asarray(img)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data show up only when decoding
        raise DataError(f"{path}: image data is corrupt or truncated ({first_line(exc)}); {FIX}") from None


def read_image_file(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG/... file as HxW or HxWx3 uint8."""
    with open_image(path) as img:
        return to_array(img, path)
