"""Study rows as model inputs: the key slice, a 2.5D stack, a slice set or the whole volume, each slice prepared
by the same ``load_prepared`` as plain images."""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd
import torch

from medfit.config import ExperimentConfig, VolumeConfig
from medfit.data.rows import Row
from medfit.data.slices import mask_areas
from medfit.data.studies import key_slices, n_slices, read_study, study_label, uses_studies
from medfit.io.medmnist import is_npz_ref
from medfit.preprocess.prepared import load_prepared
from medfit.preprocess.recipe import Recipe
from medfit.preprocess.sampling import prepared_depth, sampled_slices


def unit_range(arr: np.ndarray) -> np.ndarray:
    """uint8 -> /255; anything else min-max over the study (constant -> zeros)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def resize_slices(stack: np.ndarray, size: int) -> np.ndarray:
    """Every slice of (D, H, W) resized to (size, size)."""
    if stack.shape[1:] == (size, size):
        return stack
    interp = cv2.INTER_AREA if stack.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(s, (size, size), interpolation=interp) for s in stack])


def resample_depth(stack: np.ndarray, depth: int) -> np.ndarray:
    """(D, H, W) -> (depth, H, W) by linear interpolation along the slice axis."""
    if stack.shape[0] == depth:
        return stack
    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None, None]
    out = torch.nn.functional.interpolate(t, size=(depth, *stack.shape[1:]), mode="trilinear", align_corners=True)
    return out[0, 0].numpy()


class StudyReader:
    """Prepared slices of study rows: the recipe per slice for NIfTI/DICOM, [0, 1] scaling and resizing for 3D
    MedMNIST entries; ``model_input(row)`` gives the input of ``volume.mode``."""

    def __init__(self, recipe: Recipe, volume: VolumeConfig):
        self.recipe, self.volume = recipe, volume
        self.slice_recipe = recipe.with_channels(1)

    def slices(self, row: Row, indices: list[int] | None) -> np.ndarray:
        """Prepared slices (len(indices), H, W) in [0, 1]; ``indices`` None: every slice (within the mask label)."""
        size = self.recipe.image_size
        if is_npz_ref(row.image):
            vol = unit_range(read_study(row.image))
            return resize_slices(vol if indices is None else vol[indices], size)
        label = study_label(row, self.volume)
        if indices is None:
            if row.mask:
                indices = list(np.flatnonzero(mask_areas(read_study(row.mask), label) > 0))
            else:
                indices = list(range(n_slices(row.image)))
        at = Row(row.image, None, row.mask, label if row.mask else None)
        return np.stack([load_prepared(at.at_slice(i), self.slice_recipe)[0] for i in indices])

    def model_input(self, series) -> np.ndarray:
        """One study row (a manifest row) as the model input of ``volume.mode`` (float32)."""
        row, v, channels = Row.of(series), self.volume, self.recipe.channels
        if v.mode == "slice":
            img = self.slices(row, [row.slice_index] if row.slice_index is not None else None)
            img = img[len(img) // 2] if row.slice_index is None else img[0]
            return np.repeat(img[None], channels, axis=0)
        if v.mode == "2.5d":
            return self.slices(row, key_slices(row, v)[1])
        depth = v.slices or self.recipe.image_size
        if v.stride:  # N slices a stride apart around the middle, in the recipe's geometry (e.g. sagittal)
            stack = self.slices(row, sampled_slices(prepared_depth(row, self.slice_recipe), depth, v.stride))
            return stack[:, None] if v.mode == "slice_set" else stack[None]
        stack = self.slices(row, None)
        if v.mode == "slice_set":
            pick = np.linspace(0, len(stack) - 1, depth).round().astype(int)
            return stack[pick][:, None]
        return resample_depth(stack, depth)[None]


def input_loader(cfg: ExperimentConfig, table: pd.DataFrame) -> tuple[Callable[[object], np.ndarray], bool]:
    """How the rows of ``table`` become model inputs under ``cfg`` (training, predict and explain alike), and whether
    they are studies (stored as float16 in memory)."""
    recipe = Recipe.of_experiment(cfg)
    if uses_studies(table, cfg.volume):
        return StudyReader(recipe, cfg.volume).model_input, True
    return (lambda row: load_prepared(Row.of(row), recipe)), False
