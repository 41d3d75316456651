"""The DICOM attributes that decide how a file's pixels become a slice: parsed, checked, and compared across a series.

Rule: an attribute that differs between the slices of a series, or is missing on some slices only, is an error naming
the odd file, never a default. pydicom parses values lazily and raises many kinds of exceptions on damaged bytes, so
every value is read here, inside one guard, and turned into a plain Python value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.multival import MultiValue
from pydicom.uid import UID

from medfit.errors import DataError
from medfit.io.checks import first_line

REEXPORT = "the header is damaged: re-export the file or remove it"
# Attributes whose value must be the same on every slice of a series (None = absent).
SHARED = ("Modality", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
          "PixelRepresentation", "PixelSpacing", "ImageOrientationPatient", "FrameOfReferenceUID")
# Attributes that must be present on all slices of a series or on none (their values may differ per slice).
PRESENCE = ("ImagePositionPatient", "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence")
REQUIRED = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "PixelRepresentation",
            "PhotometricInterpretation")


def value(ds: pydicom.Dataset, keyword: str, path) -> object | None:
    """The value of ``keyword`` (None when absent or empty); a value pydicom cannot parse is a DataError."""
    try:
        found = ds.get(keyword)
        if isinstance(found, pydicom.Sequence):
            return found if len(found) else None
        if isinstance(found, (MultiValue, list, tuple)):
            found = list(found)
    except Exception as exc:  # pydicom raises BytesLengthException, ValueError, struct.error ... on damaged values
        raise DataError(f"{path}: DICOM attribute {keyword} is unreadable ({first_line(exc)}); {REEXPORT}") from None
    return None if found is None or (isinstance(found, (str, bytes, list)) and len(found) == 0) else found


def numbers(ds: pydicom.Dataset, keyword: str, path, count: int) -> tuple[float, ...] | None:
    """A numeric attribute with exactly ``count`` finite values as floats (None when absent); else a DataError."""
    raw = value(ds, keyword, path)
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    try:
        parsed = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        parsed = ()
    if len(parsed) != count or not np.all(np.isfinite(parsed)):
        raise DataError(f"{path}: {keyword} {_show(raw)} is malformed (expected {count} finite numbers); {REEXPORT}")
    return parsed


def integer(ds: pydicom.Dataset, keyword: str, path) -> int | None:
    """An integer attribute (None when absent); anything else is a DataError."""
    raw = value(ds, keyword, path)
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {keyword} {_show(raw)} is not an integer; {REEXPORT}") from None


def text(ds: pydicom.Dataset, keyword: str, path) -> str | None:
    """A string attribute, stripped (None when absent or blank)."""
    raw = value(ds, keyword, path)
    return None if raw is None else str(raw).strip() or None


def _show(raw) -> str:
    shown = "\\".join(str(v) for v in raw) if isinstance(raw, list) else str(raw)
    return repr(shown if len(shown) <= 40 else shown[:37] + "...")


def pixel_spacing(ds: pydicom.Dataset, path) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm from PixelSpacing, None when absent; zero or negative is an error."""
    spacing = numbers(ds, "PixelSpacing", path, 2)
    if spacing is not None and min(spacing) <= 0:
        raise DataError(f"{path}: PixelSpacing {spacing} must be positive (mm); {REEXPORT}")
    return spacing


def orientation(ds: pydicom.Dataset, path) -> tuple[float, ...] | None:
    """ImageOrientationPatient (row then column direction cosines), checked to be two orthogonal unit vectors."""
    iop = numbers(ds, "ImageOrientationPatient", path, 6)
    if iop is None:
        return None
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        raise DataError(f"{path}: ImageOrientationPatient {list(iop)} is not two orthogonal unit vectors; {REEXPORT}")
    return iop


def rescale(ds: pydicom.Dataset, path) -> tuple[float, float] | None:
    """(slope, intercept) of the Modality LUT rescale, None when both are absent; one without the other is an error."""
    slope, intercept = numbers(ds, "RescaleSlope", path, 1), numbers(ds, "RescaleIntercept", path, 1)
    if slope is None and intercept is None:
        return None
    if slope is None or intercept is None:
        have, lack = ("RescaleIntercept", "RescaleSlope") if slope is None else ("RescaleSlope", "RescaleIntercept")
        raise DataError(f"{path}: has {have} but no {lack}, so the values cannot be rescaled to modality units (HU "
                        f"for CT); {REEXPORT}")
    if slope[0] == 0:
        raise DataError(f"{path}: RescaleSlope is 0; {REEXPORT}")
    return slope[0], intercept[0]


def check_pixel_format(ds: pydicom.Dataset, path) -> None:
    """The Image Pixel attributes pydicom decodes with are present and consistent with each other."""
    missing = [k for k in REQUIRED if value(ds, k, path) is None]
    if missing:
        raise DataError(f"{path}: required attribute(s) {', '.join(missing)} missing; {REEXPORT}")
    allocated, stored = integer(ds, "BitsAllocated", path), integer(ds, "BitsStored", path)
    representation = integer(ds, "PixelRepresentation", path)
    if representation not in (0, 1) or not 0 < stored <= allocated or allocated not in (1, 8, 16, 32, 64):
        raise DataError(f"{path}: pixel format BitsAllocated {allocated}, BitsStored {stored}, PixelRepresentation "
                        f"{representation} is invalid; {REEXPORT}")
    padding = value(ds, "PixelPaddingValue", path)
    if representation == 0 and isinstance(padding, int) and padding < 0:
        raise DataError(f"{path}: PixelRepresentation 0 (unsigned) contradicts the negative PixelPaddingValue "
                        f"{padding}; {REEXPORT}")


def series_uid(ds: pydicom.Dataset, path) -> str:
    """SeriesInstanceUID, required and well-formed (a damaged UID must not pass for a second series)."""
    uid = text(ds, "SeriesInstanceUID", path)
    if uid is None:
        raise DataError(f"{path}: no SeriesInstanceUID, so it cannot be placed in a series; {REEXPORT}")
    if not UID(uid).is_valid:
        raise DataError(f"{path}: SeriesInstanceUID {uid!r} is malformed; {REEXPORT}")
    return uid


@dataclass
class SliceHeader:
    """What one file of a series contributes: identity, shared attributes, position and ordering hints."""

    path: Path
    series_uid: str
    shared: dict = field(default_factory=dict)
    present: dict = field(default_factory=dict)
    position: tuple[float, float, float] | None = None
    instance: int | None = None
    thickness: float | None = None


def slice_header(ds: pydicom.Dataset, path) -> SliceHeader:
    """Parse and check the attributes of one series file."""
    path = Path(path)
    check_pixel_format(ds, path)
    rescale(ds, path)
    shared = {k: integer(ds, k, path) for k in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored",
                                                 "PixelRepresentation")}
    shared.update(Modality=text(ds, "Modality", path), FrameOfReferenceUID=text(ds, "FrameOfReferenceUID", path),
                  PhotometricInterpretation=(text(ds, "PhotometricInterpretation", path) or "").upper() or None,
                  PixelSpacing=pixel_spacing(ds, path), ImageOrientationPatient=orientation(ds, path))
    position = numbers(ds, "ImagePositionPatient", path, 3)
    thickness = numbers(ds, "SpacingBetweenSlices", path, 1) or numbers(ds, "SliceThickness", path, 1)
    return SliceHeader(
        path=path, series_uid=series_uid(ds, path), shared={k: shared[k] for k in SHARED},
        present={k: value(ds, k, path) is not None for k in PRESENCE}, position=position,
        instance=integer(ds, "InstanceNumber", path), thickness=thickness[0] if thickness else None)


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and bool(np.allclose(a, b, rtol=1e-4, atol=1e-4))
    return a == b


def _majority(values: list) -> tuple[object, int]:
    """The most common value (by ``_same``) and how many slices carry it."""
    groups: list[list] = []
    for v in values:
        for group in groups:
            if _same(group[0], v):
                group[1] += 1
                break
        else:
            groups.append([v, 1])
    best = max(groups, key=lambda g: g[1])
    return best[0], best[1]


def check_agreement(headers: list[SliceHeader], folder) -> None:
    """SHARED values agree and PRESENCE attributes are on all slices or none; else a DataError names the odd file."""
    for key in SHARED:
        _agree([h.shared[key] for h in headers], headers, key, folder, lambda v: "missing" if v is None else _fmt(v))
    for key in PRESENCE:
        _agree([h.present[key] for h in headers], headers, key, folder, lambda v: "present" if v else "missing")


def _agree(values, headers, key, folder, show) -> None:
    common, count = _majority(values)
    for header, v in zip(headers, values):
        if not _same(v, common):
            raise DataError(f"{header.path}: {key} is {show(v)} on this slice but {show(common)} on {count} other "
                            f"slice(s) of series {folder}; a per-slice attribute must agree within a series: remove "
                            "this file or re-export the series")


def _fmt(v) -> str:
    return "[" + ", ".join(f"{x:g}" for x in v) + "]" if isinstance(v, tuple) else repr(v)
