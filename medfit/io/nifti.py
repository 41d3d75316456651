"""NIfTI volumes (nibabel) in the closest canonical orientation, and label masks checked against their image."""
from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from medfit.errors import DataError
from medfit.io.checks import describe_content, first_line, require_finite, sniff
from medfit.io.dicom import read_dicom_volume
from medfit.io.dicom_series import read_series
from medfit.io.grid import align_to
from medfit.io.volume import Volume

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_VOXEL_MM = 1e4  # a voxel larger than 10 m is a damaged affine


def _check_file(path: Path) -> None:
    """The file exists, is not empty, and its compression agrees with its name (nibabel trusts the suffix)."""
    if not path.is_file():
        raise DataError(f"{path}: NIfTI file not found; check the manifest path")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes); re-export it")
    found = sniff(path)
    packed = found is not None and found[0] == "gzip-compressed file"
    if path.name.lower().endswith(".gz") and not packed:
        fix = "rename it to .nii" if found is None or found[0] == "NIfTI file" else found[1]
        raise DataError(f"{path}: named .gz but not gzip-compressed ({describe_content(path)}); {fix}")
    if packed and not path.name.lower().endswith(".gz"):
        raise DataError(f"{path}: gzip-compressed but not named .gz; rename it to {path.name}.gz")


def _affine(img, path: Path, meta: dict) -> np.ndarray:
    """The image's affine, finite with positive plausible voxel sizes and independent axes; method 1 is recorded."""
    header = img.header
    if int(header.get("sform_code", 0)) == 0 and int(header.get("qform_code", 0)) == 0:
        note = "no qform/sform: voxel size from pixdim, axes assumed RAS (NIfTI method 1)"
        meta["fallbacks"].append(note)
        log.warning("%s: %s", path, note)
    affine = np.asarray(img.affine, float)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0)) if np.all(np.isfinite(affine)) else np.full(3, np.nan)
    if not np.all(np.isfinite(zooms)) or zooms.min() <= 0 or zooms.max() > MAX_VOXEL_MM:
        raise DataError(f"{path}: the affine gives voxel sizes {np.round(zooms, 4).tolist()} mm, so the header is "
                        "damaged; re-export the file")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-3 * np.prod(zooms):
        raise DataError(f"{path}: the affine's voxel axes are (nearly) parallel, so the header is damaged; "
                        "re-export the file")
    return affine


def read_nifti(path: str | Path, canonical: bool = True) -> Volume:
    """Read a 3D NIfTI as a Volume: voxel axes (i, j, k) become array axes (k, j, i), so axis 0 is the slice axis k.

    With ``canonical`` the voxel axes are first reordered/flipped to the closest RAS+ orientation (nibabel);
    4D files must have a single volume. Direction and origin are in NIfTI RAS world coordinates (meta frame 'RAS').
    """
    path = Path(path)
    _check_file(path)
    meta = {"source": str(path), "frame": "RAS", "fallbacks": []}
    try:
        img = nib.load(str(path))
        _affine(img, path, meta)
        if canonical:
            img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
    except DataError:
        raise
    except Exception as exc:  # nibabel and gzip raise ImageFileError, HeaderDataError, EOFError, zlib.error ...
        raise DataError(f"{path}: unreadable NIfTI file, truncated or damaged ({first_line(exc)}); "
                        "re-export it") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}; split 4D series into 3D files")
    affine = img.affine
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))  # voxel sizes along i, j, k
    axes = affine[:3, :3] / zooms  # columns: unit vectors of i, j, k
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if data.dtype.kind == "f":
        array = require_finite(array.astype(np.float32), path)
    elif not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    meta.update(orientation="".join(nib.aff2axcodes(affine)), dtype=str(data.dtype))
    return Volume(
        array=array,
        spacing=(float(zooms[2]), float(zooms[1]), float(zooms[0])),
        origin=tuple(float(v) for v in affine[:3, 3]),
        direction=np.stack([axes[:, 2], axes[:, 1], axes[:, 0]]),
        meta=meta,
    )


def integer_labels(array: np.ndarray, source) -> np.ndarray:
    """A label array as int32: finite whole numbers >= 0, else a DataError (a scaled or resampled mask is refused)."""
    if array.dtype.kind == "f":
        require_finite(array, source)
        fractional = array != np.round(array)
        if fractional.any():
            raise DataError(f"{source}: mask holds non-integer values (e.g. {float(array[fractional][0]):g}); a label "
                            "mask must hold integer labels: save it as integers without scaling, or give the right "
                            "file")
    if array.size and (array.min() < 0 or array.max() > np.iinfo(np.int32).max):
        raise DataError(f"{source}: mask labels range {array.min()}..{array.max()}; labels must be integers >= 0 "
                        "(0 = background): fix the mask")
    return array.astype(np.int32)


def read_mask(path: str | Path, like: Volume | None = None, tolerance: float = 0.1) -> Volume:
    """A label mask (NIfTI file, DICOM series folder or DICOM file) as int32 labels, 0 = background.

    With ``like`` (the image Volume) the mask must lie on the image's voxel grid: same shape, voxel size and
    orientation, origin within ``tolerance`` voxels. A mask stored in another axis order or direction is returned in
    the image's axis order; anything else is a DataError naming the mask file.
    """
    path = Path(path)
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        mask = read_nifti(path)
    elif path.is_dir():
        mask = read_series(path, labels=True)
    else:
        mask = read_dicom_volume(path)
    mask.array = integer_labels(mask.array, path)
    return align_to(mask, like, path, tolerance) if like is not None else mask
