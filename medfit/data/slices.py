"""Key-slice selection in a study: given, from a mask label's largest area, or the centre; plus k neighbours."""
from __future__ import annotations

import numpy as np

from medfit.errors import DataError


def centre_slice(n_slices: int) -> int:
    """The middle slice of ``n_slices`` (the upper middle for an even count)."""
    if n_slices < 1:
        raise DataError("a study needs at least one slice to pick a key slice from")
    return n_slices // 2


def mask_areas(mask: np.ndarray, label: int | None = None) -> np.ndarray:
    """Voxel count per slice (axis 0) of ``label`` in ``mask`` (any non-zero label when ``label`` is None or 0)."""
    hit = mask > 0 if not label else mask == label
    return hit.reshape(hit.shape[0], -1).sum(axis=1)


def key_slice_from_mask(mask: np.ndarray, label: int | None = None, source: str = "mask") -> int:
    """The slice (axis 0) where ``label`` covers the largest area; ties go to the lowest index."""
    areas = mask_areas(mask, label)
    if areas.max(initial=0) == 0:
        what = f"label {label}" if label else "any label"
        raise DataError(f"{source}: the mask holds no voxel of {what}; check roi_label / volume.mask_label")
    return int(np.argmax(areas))


def neighbour_indices(key: int, k: int, n_slices: int, valid: np.ndarray | None = None) -> list[int]:
    """Slices key-k .. key+k; past the volume's edge (or outside ``valid`` slices) the nearest usable slice repeats."""
    if not 0 <= key < n_slices:
        raise DataError(f"key slice {key} is outside the volume ({n_slices} slices)")
    usable = np.flatnonzero(valid) if valid is not None and np.any(valid) else np.arange(n_slices)
    out = []
    for offset in range(-k, k + 1):
        idx = min(max(key + offset, 0), n_slices - 1)
        out.append(int(usable[np.argmin(np.abs(usable - idx))]))
    return out


def choose_key_slice(rule: str, n_slices: int, given: int | None = None, mask: np.ndarray | None = None,
                     label: int | None = None, source: str = "study") -> int:
    """The key slice by ``rule``: "given" (``given``, else the centre), "mask" (largest label area) or "centre"."""
    if rule == "given":
        if given is None:
            return centre_slice(n_slices)
        if not -n_slices <= given < n_slices:
            raise DataError(f"{source}: slice_index {given} is outside the volume ({n_slices} slices)")
        return int(given) % n_slices
    if rule == "mask":
        if mask is None:
            raise DataError(f"{source}: volume.key_slice is 'mask' but the row has no mask; add a 'mask' column")
        return key_slice_from_mask(mask, label, source)
    if rule == "centre":
        return centre_slice(n_slices)
    raise DataError(f"volume.key_slice {rule!r}: expected given, mask or centre")
