"""Which slices of a study the model sees in slice_set / 3d mode: all of them spread evenly, or ``volume.slices``
slices ``volume.stride`` apart around the middle slice (the c-spine CT study). The count is taken in the recipe's
geometry (``preprocess.prepared.prepared_geometry``: a sagittal reformat has other slices than the axial series)."""
from __future__ import annotations

import numpy as np

from medfit.preprocess.reformat import central_slice_indices


def sampled_slices(count: int, depth: int, stride: int = 0) -> list[int]:
    """``depth`` of a study's ``count`` slices: evenly spread over all (stride 0), or ``stride`` apart around the
    middle slice (edge slices repeat when the window is wider than the study)."""
    if stride:
        return central_slice_indices(count, depth, stride)
    return np.linspace(0, count - 1, depth).round().astype(int).tolist()
