"""DICOM series (a folder of slices): grouping by series, ordering by position, geometry checks (one line, uniform
gaps, tilt), and resampling an irregular stack onto uniform slices. Single files: medfit.io.dicom."""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.ndimage import shift as nd_shift

from medfit.errors import DataError
from medfit.io.dicom import (
    MAX_TILT_DEG,
    POSITION_TOLERANCE_PX,
    SPACING_TOLERANCE,
    TILT_TOLERANCE_DEG,
    decode_pixels,
    fallback,
    read_dataset,
    require_pixels,
    window_meta,
)
from medfit.io.dicom_header import (
    SliceHeader,
    check_agreement,
    slice_header,
)
from medfit.io.volume import Volume

log = logging.getLogger(__name__)

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
    fallback(meta, folder, "no ImagePositionPatient on any slice: slices ordered by InstanceNumber, "
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
    fallback(meta, folder, note)
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
    meta = window_meta(read_dataset(first.path, pixels=False), folder)
    spacing = first.shared["PixelSpacing"]
    if spacing is None:
        raise DataError(f"{folder}: no slice has PixelSpacing, so the voxel size is unknown (the DICOM standard gives "
                        "no default); re-export the series with PixelSpacing")
    if not first.present["RescaleSlope"] and not first.present["ModalityLUTSequence"]:
        fallback(meta, folder, "no RescaleSlope/RescaleIntercept on any slice: stored values used as they are "
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
