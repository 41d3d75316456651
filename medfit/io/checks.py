"""Checks every reader applies to what it decoded, so that damaged values stop at the reader with one clear line."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medfit.errors import DataError


def require_finite(array: np.ndarray, source) -> np.ndarray:
    """``array`` unchanged when every value is finite; NaN or infinite values are a DataError naming ``source``."""
    if array.dtype.kind not in "fc":
        return array
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape))
        raise DataError(f"{source}: {int(bad.sum())} of {array.size} values are NaN or infinite (first at index "
                        f"{where}); fix or re-export the file, or drop it from the manifest")
    return array


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library messages may span lines; ours are one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Leading bytes of the formats medfit meets: (offset, magic, what it is, what to do when the name says otherwise).
MAGIC = ((128, b"DICM", "DICOM file", "rename it to .dcm"), (0, b"\x89PNG\r\n\x1a\n", "PNG image", "rename it to .png"),
         (0, b"\xff\xd8\xff", "JPEG image", "rename it to .jpg"),
         (0, b"\x1f\x8b", "gzip-compressed file", "name it .nii.gz if it is a NIfTI volume, else unpack it"),
         (0, b"PK\x03\x04", "zip archive", "unpack it, or name it .npz if it is a MedMNIST array file"),
         (0, b"II*\x00", "TIFF image", "rename it to .tif"), (0, b"MM\x00*", "TIFF image", "rename it to .tif"),
         (0, b"BM", "BMP image", "rename it to .bmp"), (344, b"n+1\x00", "NIfTI file", "rename it to .nii"))


def sniff(path) -> tuple[str, str] | None:
    """(what the file is, what to do when its name says otherwise) from its leading bytes; None when unknown."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(348)
    except OSError:
        return None
    for offset, magic, name, fix in MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return name, fix
    return None


def describe_content(path) -> str:
    """What the file is, for messages: 'an empty file (0 bytes)', 'a PNG image', 'of an unrecognised format'."""
    try:
        if Path(path).stat().st_size == 0:
            return "an empty file (0 bytes)"
    except OSError:
        return "unreadable"
    found = sniff(path)
    return f"a {found[0]}" if found else "of an unrecognised format"
