"""Reading medical images: plain images, MedMNIST entries, DICOM files and series, NIfTI volumes.

An image reference is a file path (PNG/JPEG/DICOM file/DICOM series folder/NIfTI), or
``<file.npz>::<key>::<index>`` for one MedMNIST entry. ``read_image`` returns a 2D slice (HxW, or HxWx3 for colour);
``read_volume`` returns a ``Volume`` with its geometry.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medfit.errors import DataError
from medfit.io.checks import require_finite
from medfit.io.dicom import read_dicom_image, read_dicom_volume
from medfit.io.dicom_series import read_series
from medfit.io.images import is_image_file, read_image_file
from medfit.io.medmnist import is_npz_ref, make_npz_ref, parse_npz_ref, read_npz_entry
from medfit.io.nifti import read_mask as read_label_mask
from medfit.io.nifti import read_nifti
from medfit.io.recent import recent_volume
from medfit.io.volume import Volume

__all__ = ["read_image", "read_volume", "read_mask", "require_finite", "is_volume_ref", "make_npz_ref", "parse_npz_ref",
           "Volume"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_nifti(path: str) -> bool:
    return path.lower().endswith(NIFTI_SUFFIXES)


def _split_slice(ref: str) -> tuple[str, int | None]:
    """``volume.nii.gz::12`` -> (path, 12); plain paths -> (path, None)."""
    if "::" in ref:
        path, _, tail = ref.rpartition("::")
        if tail.strip().lstrip("-").isdigit():
            return path, int(tail)
        raise DataError(f"{ref}: expected <volume>::<slice index>")
    return ref, None


def is_volume_ref(ref: str) -> bool:
    """True when the reference names a 3D source (NIfTI file or DICOM series folder)."""
    path, _ = _split_slice(str(ref)) if not is_npz_ref(str(ref)) else (str(ref), None)
    return _is_nifti(path) or Path(path).is_dir()


def read_volume(ref: str, **options):
    """Read a NIfTI file or a DICOM series folder (or a multi-frame DICOM file) as a ``Volume`` (the last few volumes
    read are remembered in this process: medfit.io.recent)."""
    path, _ = _split_slice(str(ref))
    return recent_volume(path, options, lambda: _read_volume(path, **options))


def _read_volume(path: str, **options):
    if _is_nifti(path):
        return read_nifti(path)
    if Path(path).is_dir():
        return read_series(path, **options)
    if Path(path).is_file():
        return read_dicom_volume(path)
    raise DataError(f"{path}: no such file or folder; check the manifest path")


def read_mask(ref: str, like=None, tolerance: float = 0.1):
    """A label mask (NIfTI, DICOM series folder or file) as int32 labels on ``like``'s grid (see nifti.read_mask)."""
    path, _ = _split_slice(str(ref))
    return read_label_mask(path, like=like, tolerance=tolerance)


def read_image(ref: str, slice_index: int | None = None) -> np.ndarray:
    """Read any image reference as a 2D array: HxW (uint8, or float32 for DICOM/NIfTI) or HxWx3 uint8.

    Volumes give the slice ``slice_index`` along their slice axis (``ref::N`` also works), the middle slice by default.
    """
    ref = str(ref)
    if is_npz_ref(ref):
        arr = read_npz_entry(ref)
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3):  # a MedMNIST 3D entry: D x H x W
            arr = _pick_slice(arr, slice_index, ref)
        elif arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        return arr
    path, ref_slice = _split_slice(ref)
    if slice_index is None:
        slice_index = ref_slice
    if is_image_file(path):
        return read_image_file(path)
    if _is_nifti(path) or Path(path).is_dir():
        vol = read_volume(path)
        return _pick_slice(vol.array, slice_index, ref)
    if not Path(path).exists():
        raise DataError(f"{path}: image file not found; check the manifest path")
    arr = read_dicom_image(path)
    if arr.ndim == 3 and arr.shape[-1] != 3:  # multi-frame
        arr = _pick_slice(arr, slice_index, ref)
    return arr


def _pick_slice(arr: np.ndarray, index: int | None, ref: str) -> np.ndarray:
    n = arr.shape[0]
    if index is None:
        index = n // 2
    if not -n <= index < n:
        raise DataError(f"{ref}: slice index {index} out of range (the volume has {n} slices)")
    return arr[index]
