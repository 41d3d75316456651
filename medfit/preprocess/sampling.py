"""Which slices of a study the model sees in slice_set / 3d mode: all of them spread evenly, or ``volume.slices``
slices ``volume.stride`` apart around the middle slice (the c-spine CT study), counted after the recipe's volume
ops (a sagittal reformat has other slices than the axial series on disk)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medfit.data.rows import Row
from medfit.data.studies import n_slices
from medfit.io import read_volume
from medfit.io.medmnist import is_npz_ref
from medfit.preprocess.recipe import Recipe
from medfit.preprocess.recipes import OPS, Item
from medfit.preprocess.reformat import central_slice_indices

_DEPTHS: dict[tuple, int] = {}


def prepared_depth(row: Row, recipe: Recipe) -> int:
    """The number of slices of a study after the recipe's volume ops (remembered per study and recipe)."""
    specs = list(recipe.ops)
    last = max((i for i, s in enumerate(specs) if OPS[s["name"]].needs_volume), default=-1)
    if is_npz_ref(row.image) or last < 0:
        return n_slices(row.image)
    key = (row.image, recipe.digest)
    if key not in _DEPTHS:
        options = {"irregular": recipe.irregular_series, "on_bad_file": recipe.on_bad_file} \
            if Path(row.image).is_dir() else {}
        item = Item(array=np.zeros((1, 1), np.float32), volume=read_volume(row.image, **options),
                    meta={"source": row.image})
        item.meta.update(item.volume.meta)
        for spec in specs[: last + 1]:
            item = OPS[spec["name"]].fn(item, **{k: v for k, v in spec.items() if k != "name"})
        _DEPTHS[key] = int(item.volume.array.shape[0])
    return _DEPTHS[key]


def sampled_slices(count: int, depth: int, stride: int = 0) -> list[int]:
    """``depth`` of a study's ``count`` slices: evenly spread over all (stride 0), or ``stride`` apart around the
    middle slice (edge slices repeat when the window is wider than the study)."""
    if stride:
        return central_slice_indices(count, depth, stride)
    return np.linspace(0, count - 1, depth).round().astype(int).tolist()
