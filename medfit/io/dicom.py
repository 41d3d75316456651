"""DICOM files and series (pydicom): HU rescale, MONOCHROME1 inversion, compressed syntaxes, slice geometry checks."""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut

from medfit.errors import DataError
from medfit.io.volume import Volume

log = logging.getLogger(__name__)

DECODERS_HINT = ("no installed decoder handles it: install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg "
                 "pylibjpeg-rle (JPEG, JPEG 2000, JPEG-LS, RLE), or convert the file to an uncompressed syntax")
TILT_TOLERANCE_DEG = 0.5
SPACING_TOLERANCE = 0.02  # relative spread of slice gaps still called uniform


def read_dataset(path: str | Path, pixels: bool = True) -> pydicom.Dataset:
    """Read one DICOM file; anything that is not DICOM, or has no pixel data, is a DataError naming the file."""
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except FileNotFoundError:
        raise DataError(f"{path}: DICOM file not found; check the manifest path") from None
    except InvalidDicomError:
        raise DataError(f"{path}: not a DICOM file (no DICM preamble); remove it or point to a DICOM file") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable DICOM file, probably truncated ({exc}); re-export it") from None
    if pixels and "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DataError(f"{path}: DICOM file has no pixel data (SOP class {ds.get('SOPClassUID', '?')}); "
                        "it is not an image, remove it from the image list")
    return ds


def decode_pixels(ds: pydicom.Dataset, path: str | Path) -> np.ndarray:
    """Stored pixels -> modality values (HU for CT) as float32, MONOCHROME1 turned into MONOCHROME2; RGB stays uint8."""
    syntax = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError, ImportError) as exc:
        name = getattr(syntax, "name", syntax)
        raise DataError(f"{path}: cannot decode pixel data in transfer syntax {name} ({str(exc).splitlines()[0]}); "
                        f"{DECODERS_HINT}") from None
    except (ValueError, EOFError, OSError, AttributeError, KeyError) as exc:
        raise DataError(f"{path}: pixel data are corrupt or truncated ({str(exc).splitlines()[0]}); "
                        "re-export the file") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        return arr  # pydicom already converted YBR to RGB
    values = apply_modality_lut(arr, ds).astype(np.float32)
    if photometric == "MONOCHROME1":  # stored inverted: high values are dark
        if "RescaleSlope" in ds or "RescaleIntercept" in ds or "ModalityLUTSequence" in ds:
            lo, hi = float(values.min()), float(values.max())
        else:
            bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
            signed = int(ds.get("PixelRepresentation", 0)) == 1
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        values = (hi + lo) - values
    return values


def _first(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value[0]) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else float(value)
    except (TypeError, ValueError):
        return None


def _window_meta(ds: pydicom.Dataset, path: str | Path) -> dict:
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is not None and str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        centre = None  # the file's window refers to the inverted values
        width = None
    return {
        "source": str(path),
        "modality": str(ds.get("Modality", "")),
        "window_center": centre,
        "window_width": width,
        "photometric": "MONOCHROME2" if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
        else str(ds.get("PhotometricInterpretation", "")),
        "transfer_syntax": str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
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
    row, col = _first_pair(ds.get("PixelSpacing"), (1.0, 1.0))
    thickness = _first(ds.get("SpacingBetweenSlices")) or _first(ds.get("SliceThickness")) or 1.0
    return Volume(arr, spacing=(thickness, row, col), meta=_window_meta(ds, path))


def _first_pair(value, default):
    try:
        return float(value[0]), float(value[1])
    except (TypeError, IndexError, ValueError):
        return default


def list_series(folder: str | Path, on_bad_file: str = "error") -> dict[str, list[tuple[Path, pydicom.Dataset]]]:
    """The DICOM files of a folder grouped by SeriesInstanceUID (headers only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DICOM series folder not found; check the manifest path")
    groups: dict[str, list] = defaultdict(list)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.name.upper() == "DICOMDIR":
            continue
        try:
            ds = read_dataset(path, pixels=False)
        except DataError as exc:
            if on_bad_file == "skip":
                log.warning("skipping %s", exc)
                continue
            raise DataError(f"{exc} (in series folder {folder}; or set preprocess.on_bad_file: skip)") from None
        groups[str(ds.get("SeriesInstanceUID", "unknown"))].append((path, ds))
    if not groups:
        raise DataError(f"{folder}: no DICOM files in this folder")
    return dict(groups)


def slice_normal(ds: pydicom.Dataset) -> np.ndarray | None:
    """Unit normal of the slice plane from ImageOrientationPatient (row x column direction)."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def read_series(folder: str | Path, irregular: str = "resample", on_bad_file: str = "error",
                series_uid: str | None = None) -> Volume:
    """Read a DICOM series folder into a Volume sorted along the slice normal, in modality units (HU for CT).

    Gantry tilt and uneven slice spacing are detected (``meta['tilt_deg']``, ``meta['spacing_uniform']``); with
    ``irregular='resample'`` the stack is resampled to a regular orthogonal grid, with ``'error'`` it stops.
    """
    folder = Path(folder)
    groups = list_series(folder, on_bad_file)
    if series_uid is None and len(groups) > 1:
        described = "; ".join(f"{uid} ({len(v)} files, e.g. {v[0][0].name})" for uid, v in groups.items())
        raise DataError(f"{folder}: {len(groups)} series mixed in one folder ({described}); "
                        "put each series in its own folder")
    uid = series_uid or next(iter(groups))
    if uid not in groups:
        raise DataError(f"{folder}: no series {uid}; found {', '.join(groups)}")
    members = groups[uid]
    first = members[0][1]
    normal = slice_normal(first)
    iop = [tuple(round(float(v), 4) for v in ds.get("ImageOrientationPatient", [])) for _, ds in members]
    if len(set(iop)) > 1:
        raise DataError(f"{folder}: slices have different ImageOrientationPatient; not one stack")
    positions = [ds.get("ImagePositionPatient") for _, ds in members]
    if normal is not None and all(p is not None and len(p) == 3 for p in positions):
        ipp = np.asarray([[float(v) for v in p] for p in positions])
        order = np.argsort(ipp @ normal, kind="stable")
        sort_by = "position"
    else:
        log.warning("%s: no ImagePositionPatient/ImageOrientationPatient; sorting by InstanceNumber", folder)
        ipp = None
        order = np.argsort([int(ds.get("InstanceNumber", 0) or 0) for _, ds in members], kind="stable")
        sort_by = "instance_number"
    members = [members[i] for i in order]
    slices = []
    for path, _ in members:
        ds = read_dataset(path)
        arr = decode_pixels(ds, path)
        if arr.ndim != 2:
            raise DataError(f"{path}: expected a single-frame grayscale slice in series {folder}, got shape {arr.shape}")
        if slices and arr.shape != slices[0].shape:
            raise DataError(f"{path}: slice shape {arr.shape} differs from {slices[0].shape} in series {folder}")
        slices.append(arr)
    array = np.stack(slices)
    row_sp, col_sp = _first_pair(first.get("PixelSpacing"), (1.0, 1.0))
    meta = _window_meta(first, folder)
    meta.update(sort_by=sort_by, num_files=len(members), files=[p.name for p, _ in members])
    if ipp is None or len(members) < 2:
        thickness = _first(first.get("SliceThickness")) or 1.0
        return Volume(array, spacing=(thickness, row_sp, col_sp), meta=meta)
    ipp = ipp[order]
    iop_v = np.asarray([float(v) for v in first.ImageOrientationPatient])
    row_dir, col_dir = iop_v[:3], iop_v[3:]
    steps = np.diff(ipp, axis=0)
    gaps = steps @ normal
    if np.any(gaps <= 1e-6):
        raise DataError(f"{folder}: two slices share one position; duplicated files in the series?")
    step_dirs = steps / np.linalg.norm(steps, axis=1, keepdims=True)
    tilt = float(np.degrees(np.arccos(np.clip(np.abs(step_dirs @ normal), 0, 1))).max())
    uniform = bool((gaps.max() - gaps.min()) <= SPACING_TOLERANCE * np.median(gaps))
    meta.update(tilt_deg=tilt, spacing_uniform=uniform, slice_gaps=[round(float(g), 4) for g in gaps],
                positions_along_normal=[round(float(p), 4) for p in (ipp - ipp[0]) @ normal])
    direction = np.stack([normal, col_dir, row_dir])  # axis 0 = slices, 1 = rows (column direction), 2 = columns
    regular = tilt <= TILT_TOLERANCE_DEG and uniform
    if regular:
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
    array, out_gap = resample_stack(array, ipp, normal, row_dir, col_dir, row_sp, col_sp, float(np.median(gaps)))
    meta.update(resampled=True)
    return Volume(array, spacing=(out_gap, row_sp, col_sp), origin=tuple(ipp[0]), direction=direction, meta=meta)


def resample_stack(array, ipp, normal, row_dir, col_dir, row_sp, col_sp, gap):
    """Parallel slices at arbitrary positions -> an orthogonal stack with regular ``gap`` along the normal.

    Each slice is shifted in its plane by its offset from the first slice's in-plane frame (undoing gantry tilt),
    then the stack is linearly interpolated along the normal at regular positions.
    """
    from scipy.ndimage import shift as nd_shift

    offsets = ipp - ipp[0]
    along = offsets @ normal
    fill = float(array.min())
    aligned = np.empty_like(array, dtype=np.float32)
    for k in range(len(array)):
        dr, dc = float(offsets[k] @ col_dir) / row_sp, float(offsets[k] @ row_dir) / col_sp
        aligned[k] = nd_shift(array[k], (dr, dc), order=1, cval=fill) if abs(dr) + abs(dc) > 1e-3 else array[k]
    n_out = int(np.floor(along[-1] / gap + 1e-6)) + 1
    targets = np.arange(n_out) * gap
    upper = np.clip(np.searchsorted(along, targets, side="right"), 1, len(along) - 1)
    lower = upper - 1
    weight = np.clip((targets - along[lower]) / (along[upper] - along[lower]), 0.0, 1.0).astype(np.float32)
    out = aligned[lower] * (1 - weight)[:, None, None] + aligned[upper] * weight[:, None, None]
    return out.astype(np.float32), gap
