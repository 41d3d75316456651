"""NIfTI volumes (nibabel) in the closest canonical orientation, with label masks beside images."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medfit.errors import DataError
from medfit.io.volume import Volume


def read_nifti(path: str | Path, canonical: bool = True) -> Volume:
    """Read a 3D NIfTI as a Volume: voxel axes (i, j, k) become array axes (k, j, i), so axis 0 is the slice axis k.

    With ``canonical`` the voxel axes are first reordered/flipped to the closest RAS+ orientation (nibabel);
    4D files must have a single volume. Direction and origin are in NIfTI RAS world coordinates (meta frame 'RAS').
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: NIfTI file not found; check the manifest path")
    try:
        img = nib.load(str(path))
        if canonical:
            img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: unreadable NIfTI file, probably truncated or not NIfTI ({exc}); re-export it") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}; split 4D series into 3D files")
    affine = img.affine
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))  # voxel sizes along i, j, k
    axes = affine[:3, :3] / np.where(zooms == 0, 1, zooms)  # columns: unit vectors of i, j, k
    is_float = data.dtype.kind == "f"
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if is_float:
        array = array.astype(np.float32)
    elif not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return Volume(
        array=array,
        spacing=(float(zooms[2]), float(zooms[1]), float(zooms[0])),
        origin=tuple(float(v) for v in affine[:3, 3]),
        direction=np.stack([axes[:, 2], axes[:, 1], axes[:, 0]]),
        meta={"source": str(path), "frame": "RAS", "orientation": "".join(nib.aff2axcodes(affine)),
              "dtype": str(data.dtype)},
    )


def read_mask(path: str | Path, like: Volume | None = None) -> Volume:
    """A label volume (integer labels, 0 = background), checked to match the image grid when ``like`` is given."""
    mask = read_nifti(path)
    if like is not None and mask.array.shape != like.array.shape:
        raise DataError(f"{path}: mask shape {mask.array.shape} differs from its image shape {like.array.shape}")
    if mask.array.dtype.kind == "f":
        if not np.all(np.isfinite(mask.array)) or np.any(mask.array != np.round(mask.array)):
            raise DataError(f"{path}: mask holds non-integer values; a label mask must be integer labels")
    mask.array = mask.array.astype(np.int32)
    return mask
