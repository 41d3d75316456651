"""Whether two volumes lie on one voxel grid (a label mask on its image), compared in one world frame (DICOM LPS)."""
from __future__ import annotations

import numpy as np

from medfit.errors import DataError
from medfit.io.volume import Volume

RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])
DIRECTION_TOLERANCE = 1e-3  # cosine mismatch of axis directions still called equal
SPACING_TOLERANCE = 1e-3  # relative voxel size mismatch still called equal
REGRID = "resample the mask onto its image's grid (the image as reference) and save it again, or give the right mask"


def lps_geometry(vol: Volume) -> tuple[np.ndarray, np.ndarray]:
    """(origin, direction rows) of a volume in DICOM LPS coordinates (NIfTI volumes carry RAS, see meta['frame'])."""
    origin, direction = np.asarray(vol.origin, float), np.asarray(vol.direction, float)
    if vol.meta.get("frame") == "RAS":
        return origin * RAS_TO_LPS, direction * RAS_TO_LPS
    return origin, direction


def _axis_match(image_dir: np.ndarray, mask_dir: np.ndarray, source, like: Volume) -> tuple[list[int], np.ndarray]:
    """For each image axis the mask axis along it and the sign; an oblique or mismatched orientation is an error."""
    cosines = image_dir @ mask_dir.T
    perm = [int(np.argmax(np.abs(row))) for row in cosines]
    signs = np.sign([cosines[i, j] for i, j in enumerate(perm)])
    if sorted(perm) != [0, 1, 2] or np.any(np.abs(np.abs(cosines[range(3), perm]) - 1) > DIRECTION_TOLERANCE):
        raise DataError(f"{source}: mask orientation differs from its image {like.meta.get('source', '')} (axis "
                        f"cosines {np.round(np.abs(cosines[range(3), perm]), 4).tolist()}); {REGRID}")
    return perm, signs


def align_to(mask: Volume, like: Volume, source, tolerance: float = 0.1) -> Volume:
    """``mask`` on ``like``'s voxel axes: reordered and flipped when its grid is the same one stored in another axis
    order; a different shape, voxel size, orientation or an origin more than ``tolerance`` voxels away is an error."""
    m_origin, m_dir = lps_geometry(mask)
    i_origin, i_dir = lps_geometry(like)
    perm, signs = _axis_match(i_dir, m_dir, source, like)
    array = np.transpose(mask.array, perm)
    spacing = np.asarray(mask.spacing, float)[perm]
    for axis in np.flatnonzero(signs < 0):  # the mask runs the other way along this axis: start from its far end
        m_origin = m_origin + (array.shape[axis] - 1) * spacing[axis] * m_dir[perm[axis]]
        array = np.flip(array, axis)
    image = like.meta.get("source", "its image")
    if array.shape != like.array.shape:
        raise DataError(f"{source}: mask shape {array.shape} differs from the image shape {like.array.shape} of "
                        f"{image}; {REGRID}")
    if not np.allclose(spacing, like.spacing, rtol=SPACING_TOLERANCE):
        raise DataError(f"{source}: mask voxel size {np.round(spacing, 4).tolist()} mm differs from "
                        f"{np.round(like.spacing, 4).tolist()} mm of {image}; {REGRID}")
    offset = float(np.linalg.norm(m_origin - i_origin))
    if offset > tolerance * min(like.spacing):
        raise DataError(f"{source}: mask origin lies {offset:.2f} mm from the origin of {image} (more than "
                        f"{tolerance:g} voxel), so its labels would be shifted or mirrored; {REGRID}")
    meta = {**mask.meta, "frame": like.meta.get("frame", "LPS"), "aligned_to": like.meta.get("source", "")}
    return Volume(np.ascontiguousarray(array), spacing=like.spacing, origin=like.origin,
                  direction=np.asarray(like.direction), meta=meta)
