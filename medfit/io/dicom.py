"""DICOM files and series (pydicom): HU rescale, MONOCHROME1 inversion, compressed syntaxes, slice geometry checks.

Damaged input stops here with one line naming the file: per-slice attributes must agree across a series (see
``dicom_header``), positions must lie on one line, and a value missing on every slice falls back only where the DICOM
standard defines what its absence means (``meta['fallbacks']`` records it, and it is logged).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID
from scipy.ndimage import shift as nd_shift

from medfit.errors import DataError
from medfit.io.checks import describe_content, first_line, require_finite, sniff
from medfit.io.dicom_header import (
    REEXPORT,
    SliceHeader,
    check_agreement,
    check_pixel_format,
    integer,
    numbers,
    pixel_spacing,
    rescale,
    slice_header,
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


def _window_meta(ds: pydicom.Dataset, path: str | Path) -> dict:
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
    return _window_meta(read_dataset(path, pixels=False), path)


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
    meta = _window_meta(ds, path)
    step = numbers(ds, "SpacingBetweenSlices", path, 1) or numbers(ds, "SliceThickness", path, 1)
    if step is None and len(arr) > 1:
        raise DataError(f"{path}: {len(arr)} frames but no SpacingBetweenSlices or SliceThickness, so the frame "
                        "spacing is unknown; re-export the file with its frame geometry")
    if step is None:
        _fallback(meta, path, "slice spacing 1 mm assumed for a single slice (no SpacingBetweenSlices/SliceThickness)")
    return Volume(arr, spacing=(step[0] if step else 1.0, *spacing), meta=meta)


def _fallback(meta: dict, source, note: str, level: int = logging.WARNING) -> None:
    """Record a fallback in the volume's meta and log it (never a silent default)."""
    meta.setdefault("fallbacks", []).append(note)
    log.log(level, "%s: %s", source, note)


def list_series(folder: str | Path, on_bad_file: str = "error") -> dict[str, list[SliceHeader]]:
    """The image files of a folder as checked headers, grouped by SeriesInstanceUID (pixels not read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DICOM series folder not found; check the manifest path")
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = read_dataset(path, pixels=False)
            require_pixels(ds, path)
            header = slice_header(ds, path)
        except DataError as exc:
            if on_bad_file == "skip":
                log.warning("skipping %s", exc)
                continue
            raise DataError(f"{exc} (in series folder {folder}; or set preprocess.on_bad_file: skip)") from None
        groups[header.series_uid].append(header)
    if not groups:
        raise DataError(f"{folder}: no DICOM files in this folder; check the manifest path")
    return dict(groups)


def _pick_series(groups: dict[str, list[SliceHeader]], folder: Path, uid: str | None) -> list[SliceHeader]:
    if uid is None and len(groups) > 1:
        described = "; ".join(f"{k} ({len(v)} files, e.g. {v[0].path.name})" for k, v in groups.items())
        raise DataError(f"{folder}: {len(groups)} series mixed in one folder ({described}); "
                        "put each series in its own folder")
    uid = uid or next(iter(groups))
    if uid not in groups:
        raise DataError(f"{folder}: no series {uid}; found {', '.join(groups)}; check the series UID")
    return groups[uid]


def slice_normal(iop) -> np.ndarray:
    """Unit normal of the slice plane from ImageOrientationPatient values (row x column direction)."""
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    return normal / np.linalg.norm(normal)


def _by_instance(members: list[SliceHeader], folder: Path, meta: dict) -> list[SliceHeader]:
    """No position on any slice: order by InstanceNumber, which then must be on every slice and unique."""
    if len(members) == 1:
        return members
    seen: dict[int, Path] = {}
    for m in members:
        if m.instance is None:
            raise DataError(f"{m.path}: no ImagePositionPatient on any slice of series {folder} and no InstanceNumber "
                            "on this one, so the slice order is unknown; re-export the series")
        if m.instance in seen:
            raise DataError(f"{m.path}: InstanceNumber {m.instance} also on {seen[m.instance].name} and no "
                            f"ImagePositionPatient in series {folder}; remove the duplicate or re-export the series")
        seen[m.instance] = m.path
    _fallback(meta, folder, "no ImagePositionPatient on any slice: slices ordered by InstanceNumber, "
                            "gantry tilt and slice gaps cannot be checked")
    return sorted(members, key=lambda m: m.instance)


def _slice_step(members: list[SliceHeader], folder: Path, meta: dict) -> float:
    """Slice spacing without positions: SpacingBetweenSlices/SliceThickness, equal on every slice."""
    steps = {m.thickness for m in members}
    if len(steps) > 1:
        odd = next(m for m in members if m.thickness != members[0].thickness)
        raise DataError(f"{odd.path}: SliceThickness {odd.thickness} differs from {members[0].thickness} in series "
                        f"{folder}, which has no ImagePositionPatient; remove this file or re-export the series")
    step = steps.pop()
    if step is None and len(members) > 1:
        raise DataError(f"{folder}: no ImagePositionPatient, SpacingBetweenSlices or SliceThickness, so the slice "
                        "spacing is unknown; re-export the series with its slice geometry")
    where = "a single slice" if len(members) == 1 else "no ImagePositionPatient"
    note = (f"slice spacing {step:g} mm from SpacingBetweenSlices/SliceThickness ({where})" if step is not None
            else "slice spacing 1 mm assumed for a single slice (no SpacingBetweenSlices/SliceThickness)")
    _fallback(meta, folder, note)
    return step if step is not None else 1.0


def check_positions(ipp: np.ndarray, normal, row_dir, col_dir, paths: list[Path], pixel: float, folder) -> None:
    """Slice positions must lie on one line (constant tilt) at a plausible tilt; the outlier slice is named."""
    offsets = ipp - ipp[0]
    along = offsets @ normal
    inplane = np.stack([offsets @ row_dir, offsets @ col_dir], axis=1)
    drift = np.diff(inplane, axis=0) / np.diff(along)[:, None]  # in-plane shift per mm along the normal, per step
    if len(ipp) >= 4:
        off_line = inplane - along[:, None] * np.median(drift, axis=0)
        distance = np.linalg.norm(off_line - np.median(off_line, axis=0), axis=1)
        worst = int(np.argmax(distance))
        if distance[worst] > POSITION_TOLERANCE_PX * pixel:
            raise DataError(f"{paths[worst]}: ImagePositionPatient lies {distance[worst]:.1f} mm off the line through "
                            f"the other slices of series {folder} (a foreign or damaged slice); remove it or "
                            "re-export the series")
    steep = int(np.argmax(np.linalg.norm(drift, axis=1)))
    tilt = float(np.degrees(np.arctan(np.linalg.norm(drift[steep]))))
    if tilt > MAX_TILT_DEG:
        raise DataError(f"{paths[steep + 1]}: ImagePositionPatient implies a gantry tilt of {tilt:.0f} deg from "
                        f"{paths[steep].name} (gantries tilt at most 30 deg), a foreign or damaged slice in series "
                        f"{folder}; remove it or re-export the series")


def _by_position(members: list[SliceHeader], iop, folder: Path) -> tuple[list[SliceHeader], np.ndarray]:
    """Members sorted along the slice normal, with their positions; shared positions are an error naming both."""
    normal = slice_normal(iop)
    ipp = np.asarray([m.position for m in members], dtype=float)
    order = np.argsort(ipp @ normal, kind="stable")
    members, ipp = [members[i] for i in order], ipp[order]
    gaps = np.diff(ipp @ normal)
    if np.any(gaps <= 1e-6):
        k = int(np.argmax(gaps <= 1e-6))
        raise DataError(f"{members[k + 1].path}: same position along the slice normal as {members[k].path.name} in "
                        f"series {folder}; a duplicated file? remove one of them")
    return members, ipp


def _stack(members: list[SliceHeader], folder: Path) -> np.ndarray:
    slices = []
    for m in members:
        arr = decode_pixels(read_dataset(m.path), m.path)
        if arr.ndim != 2:
            raise DataError(f"{m.path}: expected a single-frame grayscale slice in series {folder}, got shape "
                            f"{arr.shape}; remove it or split the multi-frame file")
        slices.append(arr)
    return np.stack(slices)


def read_series(folder: str | Path, irregular: str = "resample", on_bad_file: str = "error",
                series_uid: str | None = None, labels: bool = False) -> Volume:
    """Read a DICOM series folder into a Volume sorted along the slice normal, in modality units (HU for CT).

    Gantry tilt and uneven slice spacing are detected (``meta['tilt_deg']``, ``meta['spacing_uniform']``); with
    ``irregular='resample'`` the stack is resampled to a regular orthogonal grid (nearest neighbour with ``labels``,
    for label masks), with ``'error'`` it stops.
    """
    folder = Path(folder)
    members = _pick_series(list_series(folder, on_bad_file), folder, series_uid)
    check_agreement(members, folder)
    first = members[0]
    meta = _window_meta(read_dataset(first.path, pixels=False), folder)
    spacing = first.shared["PixelSpacing"]
    if spacing is None:
        raise DataError(f"{folder}: no slice has PixelSpacing, so the voxel size is unknown (the DICOM standard gives "
                        "no default); re-export the series with PixelSpacing")
    if not first.present["RescaleSlope"] and not first.present["ModalityLUTSequence"]:
        _fallback(meta, folder, "no RescaleSlope/RescaleIntercept on any slice: stored values used as they are "
                                "(no Modality LUT)", logging.WARNING if meta["modality"] == "CT" else logging.INFO)
    iop = first.shared["ImageOrientationPatient"]
    if first.position is not None and iop is None:
        raise DataError(f"{folder}: slices have ImagePositionPatient but no ImageOrientationPatient, so the slice "
                        "normal is unknown; re-export the series")
    row_sp, col_sp = spacing
    if first.position is None or len(members) < 2:
        members = _by_instance(members, folder, meta)
        meta.update(sort_by="instance_number" if first.position is None else "position", num_files=len(members),
                    files=[m.path.name for m in members])
        return Volume(_stack(members, folder), spacing=(_slice_step(members, folder, meta), row_sp, col_sp), meta=meta)
    members, ipp = _by_position(members, iop, folder)
    normal, row_dir, col_dir = slice_normal(iop), np.asarray(iop[:3]), np.asarray(iop[3:])
    check_positions(ipp, normal, row_dir, col_dir, [m.path for m in members], max(spacing), folder)
    meta.update(sort_by="position", num_files=len(members), files=[m.path.name for m in members])
    array = _stack(members, folder)
    steps = np.diff(ipp, axis=0)
    gaps = steps @ normal
    step_dirs = steps / np.linalg.norm(steps, axis=1, keepdims=True)
    tilt = float(np.degrees(np.arccos(np.clip(np.abs(step_dirs @ normal), 0, 1))).max())
    uniform = bool((gaps.max() - gaps.min()) <= SPACING_TOLERANCE * np.median(gaps))
    meta.update(tilt_deg=tilt, spacing_uniform=uniform, slice_gaps=[round(float(g), 4) for g in gaps],
                positions_along_normal=[round(float(p), 4) for p in (ipp - ipp[0]) @ normal])
    direction = np.stack([normal, col_dir, row_dir])  # axis 0 = slices, 1 = rows (column direction), 2 = columns
    if tilt <= TILT_TOLERANCE_DEG and uniform:
        return Volume(array, spacing=(float(np.median(gaps)), row_sp, col_sp), origin=tuple(ipp[0]),
                      direction=direction, meta=meta)
    problem = []
    if tilt > TILT_TOLERANCE_DEG:
        problem.append(f"gantry tilt {tilt:.1f} deg")
    if not uniform:
        problem.append(f"uneven slice spacing {gaps.min():.2f}-{gaps.max():.2f} mm")
    if irregular == "error":
        raise DataError(f"{folder}: {' and '.join(problem)}; set preprocess.irregular_series: resample "
                        "to resample it onto a regular grid")
    log.info("%s: %s; resampling to a regular grid", folder, " and ".join(problem))
    array, out_gap = resample_stack(array, ipp, normal, row_dir, col_dir, row_sp, col_sp, float(np.median(gaps)),
                                    order=0 if labels else 1)
    meta.update(resampled=True)
    return Volume(array, spacing=(out_gap, row_sp, col_sp), origin=tuple(ipp[0]), direction=direction, meta=meta)


def resample_stack(array, ipp, normal, row_dir, col_dir, row_sp, col_sp, gap, order: int = 1):
    """Parallel slices at arbitrary positions -> an orthogonal stack with regular ``gap`` along the normal.

    Each slice is shifted in its plane by its offset from the first slice's in-plane frame (undoing gantry tilt),
    then the stack is interpolated along the normal at regular positions: linearly (``order=1``) or to the nearest
    slice (``order=0``, for label masks).
    """
    offsets = ipp - ipp[0]
    along = offsets @ normal
    fill = float(array.min())
    aligned = np.empty_like(array, dtype=np.float32)
    for k in range(len(array)):
        dr, dc = float(offsets[k] @ col_dir) / row_sp, float(offsets[k] @ row_dir) / col_sp
        aligned[k] = nd_shift(array[k], (dr, dc), order=order, cval=fill) if abs(dr) + abs(dc) > 1e-3 else array[k]
    n_out = int(np.floor(along[-1] / gap + 1e-6)) + 1
    targets = np.arange(n_out) * gap
    upper = np.clip(np.searchsorted(along, targets, side="right"), 1, len(along) - 1)
    lower = upper - 1
    weight = np.clip((targets - along[lower]) / (along[upper] - along[lower]), 0.0, 1.0).astype(np.float32)
    if order == 0:
        weight = np.round(weight)
    out = aligned[lower] * (1 - weight)[:, None, None] + aligned[upper] * weight[:, None, None]
    return out.astype(np.float32), gap
