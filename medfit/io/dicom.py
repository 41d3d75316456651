"""DICOM files and series (pydicom): HU rescale, MONOCHROME1 inversion, compressed syntaxes, slice geometry checks.

Damaged input stops here with one line naming the file: per-slice attributes must agree across a series (see
``dicom_header``), positions must lie on one line, and a value missing on every slice falls back only where the DICOM
standard defines what its absence means (``meta['fallbacks']`` records it, and it is logged).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID

from medfit.errors import DataError
from medfit.io.checks import describe_content, first_line, require_finite, sniff
from medfit.io.dicom_header import (
    REEXPORT,
    check_pixel_format,
    integer,
    numbers,
    pixel_spacing,
    rescale,
    text,
    value,
)
from medfit.io.volume import Volume

log = logging.getLogger(__name__)

DECODERS_HINT = ("no installed decoder handles it: install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg "
                 "pylibjpeg-rle (JPEG, JPEG 2000, JPEG-LS, RLE), or convert the file to an uncompressed syntax")
TILT_TOLERANCE_DEG = 0.5
SPACING_TOLERANCE = 0.02  # relative spread of slice gaps still called uniform
MAX_TILT_DEG = 35.0  # CT gantries tilt at most 30 degrees: a steeper step between slices is a foreign or damaged slice
POSITION_TOLERANCE_PX = 1.0  # how far (in pixels) a slice may sit off the line through the others
CT_MAX_HU = 32767.0  # the extended CT scale ends near 30710 HU: more means a damaged pixel format or rescale
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dataset(path: str | Path, pixels: bool = True) -> pydicom.Dataset:
    """Read one DICOM file; anything that is not DICOM, or (with ``pixels``) has no pixel data, is a DataError."""
    path = Path(path)
    try:
        # without pixels: large values (the pixel data) are deferred, so their presence is known but not read
        ds = pydicom.dcmread(str(path), defer_size=None if pixels else "4 KB")
    except FileNotFoundError:
        raise DataError(f"{path}: DICOM file not found; check the manifest path") from None
    except InvalidDicomError:
        raise DataError(_not_dicom(path)) from None
    except Exception as exc:  # pydicom raises EOFError, struct.error, ValueError ... on damaged bytes
        raise DataError(f"{path}: unreadable DICOM file, truncated or damaged ({first_line(exc)}); "
                        "re-export it or remove it") from None
    if pixels:
        require_pixels(ds, path)
    return ds


def _not_dicom(path: Path) -> str:
    found = sniff(path)
    if found and found[0] != "DICOM file":
        return f"{path}: not a DICOM file but a {found[0]}; {found[1]}, or remove it"
    return (f"{path}: not a DICOM file ({describe_content(path)}, no DICM marker at byte 128); remove it or point "
            "to a DICOM file")


def require_pixels(ds: pydicom.Dataset, path: Path) -> None:
    """A DataError unless the dataset holds pixel data, saying whether it is a non-image object or a cut-off image."""
    if any(k in ds for k in PIXEL_KEYWORDS):
        return
    meta = getattr(ds, "file_meta", pydicom.Dataset())
    sop = value(ds, "SOPClassUID", path) or value(meta, "MediaStorageSOPClassUID", path)
    name = UID(str(sop)).name if sop else ""
    if name and name != str(sop) and "Image" not in name and value(ds, "Rows", path) is None:
        raise DataError(f"{path}: DICOM file has no pixel data: it is a {name}, not an image; remove it from the "
                        "image list or the series folder")
    raise DataError(f"{path}: DICOM file has no pixel data: only {len(ds)} header elements could be read from its "
                    f"{path.stat().st_size} bytes, so it is truncated or its header is damaged; re-export it or "
                    "remove it")


def transfer_syntax(ds: pydicom.Dataset, path) -> UID:
    """The file's transfer syntax, required and known (a damaged UID must not pass for a missing decoder)."""
    meta = getattr(ds, "file_meta", None)
    uid = value(meta, "TransferSyntaxUID", path) if meta is not None else None
    if uid is None:
        raise DataError(f"{path}: the file meta has no TransferSyntaxUID, so the pixel data cannot be interpreted; "
                        f"{REEXPORT}")
    uid = UID(str(uid))
    if not uid.is_transfer_syntax:
        raise DataError(f"{path}: TransferSyntaxUID {str(uid)!r} is no known transfer syntax; {REEXPORT}")
    return uid


def _check_length(ds: pydicom.Dataset, path) -> None:
    """Native pixel data must hold exactly Rows x Columns x frames x samples x bits (a damaged Rows reads a part)."""
    if "PixelData" not in ds:
        return
    count = (integer(ds, "Rows", path) * integer(ds, "Columns", path) * (integer(ds, "NumberOfFrames", path) or 1)
             * (integer(ds, "SamplesPerPixel", path) or 1))
    bits = integer(ds, "BitsAllocated", path)
    expected = (count + 7) // 8 if bits == 1 else count * bits // 8
    if text(ds, "PhotometricInterpretation", path) == "YBR_FULL_422":
        expected = expected * 2 // 3
    actual = len(value(ds, "PixelData", path) or b"")
    if actual < expected:
        raise DataError(f"{path}: pixel data are corrupt or truncated (only {actual} of {expected} bytes); "
                        "re-export the file")
    if actual > expected + 1:
        raise DataError(f"{path}: pixel data hold {actual} bytes but Rows x Columns x frames x samples x bits need "
                        f"{expected}; {REEXPORT}")


def _check_high_bits(ds: pydicom.Dataset, path) -> None:
    """Bits above BitsStored must be zero (unsigned) or copies of the sign bit (signed); otherwise pydicom's masking
    would silently turn the values into others (a damaged PixelRepresentation or BitsStored)."""
    allocated, stored = integer(ds, "BitsAllocated", path), integer(ds, "BitsStored", path)
    if "PixelData" not in ds or allocated not in (8, 16, 32) or stored >= allocated:
        return
    big_endian = not getattr(ds.file_meta, "TransferSyntaxUID", UID("1.2.840.10008.1.2.1")).is_little_endian
    words = np.frombuffer(value(ds, "PixelData", path), dtype=f"{'>' if big_endian else '<'}u{allocated // 8}")
    signed = integer(ds, "PixelRepresentation", path) == 1
    high = words >> (stored - 1 if signed else stored)
    ones = (1 << (allocated - stored + (1 if signed else 0))) - 1
    if np.any((high != 0) & (high != ones) if signed else high != 0):
        kind = "signed" if signed else "unsigned"
        raise DataError(f"{path}: pixel values use bits above BitsStored {stored} ({kind}), so PixelRepresentation "
                        f"or BitsStored is wrong; {REEXPORT}")


def decode_pixels(ds: pydicom.Dataset, path: str | Path) -> np.ndarray:
    """Stored pixels -> modality values (HU for CT) as float32, MONOCHROME1 turned into MONOCHROME2; RGB stays uint8."""
    check_pixel_format(ds, path)
    syntax = transfer_syntax(ds, path)
    slope_intercept = rescale(ds, path)
    if not syntax.is_compressed:
        _check_length(ds, path)
        _check_high_bits(ds, path)
    try:
        arr = ds.pixel_array
    except (NotImplementedError, ImportError) as exc:
        raise DataError(f"{path}: cannot decode pixel data in transfer syntax {syntax.name} ({first_line(exc)}); "
                        f"{DECODERS_HINT}") from None
    except Exception as exc:  # the decoders raise RuntimeError, ValueError, OSError ... on corrupt data
        msg = first_line(exc)
        if "dependenc" in msg or "plugins are available" in msg:
            raise DataError(f"{path}: cannot decode pixel data in transfer syntax {syntax.name} ({msg}); "
                            f"{DECODERS_HINT}") from None
        raise DataError(f"{path}: pixel data are corrupt or truncated ({msg}); re-export the file") from None
    if (integer(ds, "SamplesPerPixel", path) or 1) > 1:
        return arr  # pydicom already converted YBR to RGB
    values = _modality_values(arr, ds, path, slope_intercept)
    if text(ds, "PhotometricInterpretation", path).upper() == "MONOCHROME1":  # stored inverted: high values are dark
        values = _invert(values, ds, path, slope_intercept)
    return require_finite(values, path)


def _modality_values(arr: np.ndarray, ds: pydicom.Dataset, path, slope_intercept) -> np.ndarray:
    """Stored values through the Modality LUT or rescale (none of them: the stored values are the values)."""
    if value(ds, "ModalityLUTSequence", path) is not None:
        try:
            return apply_modality_lut(arr, ds).astype(np.float32)
        except Exception as exc:  # a damaged LUT item raises whatever its parsing hits
            raise DataError(f"{path}: ModalityLUTSequence is unusable ({first_line(exc)}); {REEXPORT}") from None
    if slope_intercept is None:
        values = arr.astype(np.float32)
    else:
        slope, intercept = slope_intercept
        values = (arr.astype(np.float64) * slope + intercept).astype(np.float32)
    if text(ds, "Modality", path) == "CT" and values.size and float(values.max()) > CT_MAX_HU:
        raise DataError(f"{path}: CT values up to {float(values.max()):.0f} HU are impossible (the CT scale ends near "
                        "+30710 HU), so PixelRepresentation, BitsStored or RescaleSlope/Intercept is wrong; "
                        f"{REEXPORT}")
    return values


def _invert(values: np.ndarray, ds: pydicom.Dataset, path, slope_intercept) -> np.ndarray:
    if slope_intercept is not None or value(ds, "ModalityLUTSequence", path) is not None:
        lo, hi = float(values.min()), float(values.max())
    else:
        bits = integer(ds, "BitsStored", path)
        signed = integer(ds, "PixelRepresentation", path) == 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return (hi + lo) - values


def _first(raw) -> float | None:
    if raw is None:
        return None
    try:
        number = float(raw[0]) if isinstance(raw, list) else float(raw)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def window_meta(ds: pydicom.Dataset, path: str | Path) -> dict:
    photometric = (text(ds, "PhotometricInterpretation", path) or "").upper()
    centre, width = _first(value(ds, "WindowCenter", path)), _first(value(ds, "WindowWidth", path))
    if photometric == "MONOCHROME1":  # the file's window refers to the inverted values
        centre = width = None
    meta = getattr(ds, "file_meta", None)
    return {
        "source": str(path),
        "modality": text(ds, "Modality", path) or "",
        "window_center": centre,
        "window_width": width,
        "photometric": "MONOCHROME2" if photometric == "MONOCHROME1" else photometric,
        "transfer_syntax": str(value(meta, "TransferSyntaxUID", path) or "") if meta is not None else "",
        "series_uid": text(ds, "SeriesInstanceUID", path) or "",
        "frame": "LPS",
        "fallbacks": [],
    }


def read_dicom_image(path: str | Path) -> np.ndarray:
    """One DICOM file as modality values: HxW float32 (HU for CT), HxWx3 uint8 for colour, FxHxW for multi-frame."""
    ds = read_dataset(path)
    return decode_pixels(ds, path)


def read_dicom_meta(path: str | Path) -> dict:
    """Key metadata of one DICOM file (modality, window, photometric interpretation, transfer syntax)."""
    return window_meta(read_dataset(path, pixels=False), path)


def read_dicom_volume(path: str | Path) -> Volume:
    """A single DICOM file as a Volume (multi-frame files keep their frames on axis 0)."""
    ds = read_dataset(path)
    arr = decode_pixels(ds, path)
    if arr.ndim == 2:
        arr = arr[None]
    spacing = pixel_spacing(ds, path)
    if spacing is None:
        raise DataError(f"{path}: no PixelSpacing, so the voxel size is unknown (the DICOM standard gives no default); "
                        "read it as a 2D image, or add PixelSpacing to the file")
    meta = window_meta(ds, path)
    step = numbers(ds, "SpacingBetweenSlices", path, 1) or numbers(ds, "SliceThickness", path, 1)
    if step is None and len(arr) > 1:
        raise DataError(f"{path}: {len(arr)} frames but no SpacingBetweenSlices or SliceThickness, so the frame "
                        "spacing is unknown; re-export the file with its frame geometry")
    if step is None:
        fallback(meta, path, "slice spacing 1 mm assumed for a single slice (no SpacingBetweenSlices/SliceThickness)")
    return Volume(arr, spacing=(step[0] if step else 1.0, *spacing), meta=meta)


def fallback(meta: dict, source, note: str, level: int = logging.WARNING) -> None:
    """Record a fallback in the volume's meta and log it (never a silent default)."""
    meta.setdefault("fallbacks", []).append(note)
    log.log(level, "%s: %s", source, note)
