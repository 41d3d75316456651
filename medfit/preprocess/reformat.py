"""Multiplanar reformatting: a volume resampled (SimpleITK) onto sagittal, coronal or axial slices at isotropic spacing."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medfit.errors import DataError
from medfit.io.volume import Volume

# Output axes (slice normal, row direction, column direction) in DICOM LPS patient coordinates, radiological display:
# rows run head to feet; columns run anterior to posterior (sagittal) or patient right to left (coronal, axial).
PLANES_LPS: dict[str, np.ndarray] = {
    "sagittal": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]),
    "coronal": np.array([[0, 1.0, 0], [0, 0, -1.0], [1.0, 0, 0]]),
    "axial": np.array([[0, 0, 1.0], [0, 1.0, 0], [1.0, 0, 0]]),
}


def reformat(volume: Volume, plane: str = "sagittal", spacing: float | None = None, order: int = 1,
             fill: float | None = None) -> Volume:
    """Resample ``volume`` so that axis 0 runs across ``plane`` slices, with isotropic ``spacing`` (default: finest)."""
    if plane not in PLANES_LPS:
        raise DataError(f"reformat: unknown plane {plane!r}; use sagittal, coronal or axial")
    axes = PLANES_LPS[plane].copy()
    if volume.meta.get("frame") == "RAS":  # NIfTI world coordinates: x and y point the other way
        axes[:, :2] *= -1.0
    iso = float(spacing) if spacing else float(min(volume.spacing))
    src = volume.to_sitk()
    # Bounding box of the source voxel corners, expressed along the output axes.
    size_in = np.array(src.GetSize())
    corners = np.array([[i, j, k] for i in (0, size_in[0] - 1) for j in (0, size_in[1] - 1) for k in (0, size_in[2] - 1)])
    world = np.array([src.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner]) for corner in corners])
    proj = world @ axes.T  # (corners, 3) in output (slice, row, col) coordinates
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    size_out = np.maximum(1, np.floor((hi - lo) / iso + 1e-6).astype(int) + 1)
    origin = lo @ axes  # back to patient coordinates
    out = sitk.Image([int(s) for s in size_out[::-1]], sitk.sitkFloat32)
    out.SetSpacing([iso] * 3)
    out.SetOrigin([float(v) for v in origin])
    out.SetDirection([float(v) for v in axes[::-1].T.ravel()])  # columns = x, y, z index axes
    interp = sitk.sitkNearestNeighbor if order == 0 else sitk.sitkLinear
    default = float(np.min(volume.array)) if fill is None else float(fill)
    resampled = sitk.Resample(sitk.Cast(src, sitk.sitkFloat32) if order else src, out, sitk.Transform(), interp, default)
    meta = dict(volume.meta, plane=plane)
    return Volume.from_sitk(resampled, meta=meta)


def central_slice_indices(num_slices: int, n: int, step: int = 1) -> list[int]:
    """``n`` slice indices centred on the middle slice, ``step`` apart (e.g. 25 for training); a window wider than
    the volume is clipped to it, the edge slices repeating, so that there are always ``n`` (a model input's depth)."""
    if n <= 0 or step <= 0:
        raise DataError(f"slices: need n >= 1 and a step >= 1, got n {n}, step {step}")
    if num_slices <= 0:
        raise DataError("slices: the study has no slice to sample")
    start = num_slices // 2 - (n // 2) * step
    return [min(max(start + i * step, 0), num_slices - 1) for i in range(n)]
