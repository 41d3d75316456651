"""A 3D image with its geometry: the common currency of the DICOM and NIfTI readers."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk


@dataclass
class Volume:
    """Voxels in (slice, row, column) order, as SimpleITK's GetArrayFromImage gives them.

    ``spacing`` is in mm in the same axis order as ``array``; ``origin`` is the patient position (mm) of voxel (0, 0, 0);
    ``direction`` is 3x3 with row ``i`` the unit vector of array axis ``i`` in patient coordinates (DICOM LPS, or
    NIfTI RAS for NIfTI sources; see ``meta['frame']``).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """The array shape (slices, rows, columns)."""
        return tuple(self.array.shape)

    def slice(self, index: int | None = None) -> np.ndarray:
        """One slice along axis 0, the middle one by default."""
        return self.array[self.array.shape[0] // 2 if index is None else index]

    def to_sitk(self):
        """The volume as a SimpleITK image (x = column, y = row, z = slice)."""
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing([float(s) for s in self.spacing[::-1]])
        img.SetOrigin([float(o) for o in self.origin])
        # SimpleITK wants the columns of the matrix to be the x, y, z index axes.
        img.SetDirection([float(v) for v in np.asarray(self.direction)[::-1].T.ravel()])
        return img

    @classmethod
    def from_sitk(cls, img, meta: dict | None = None) -> "Volume":
        """A Volume from a SimpleITK image (inverse of ``to_sitk``)."""
        d = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)
        return cls(
            array=sitk.GetArrayFromImage(img),
            spacing=tuple(float(s) for s in img.GetSpacing()[::-1]),
            origin=tuple(float(o) for o in img.GetOrigin()),
            direction=d.T[::-1].copy(),
            meta=dict(meta or {}),
        )
