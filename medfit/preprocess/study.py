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
from medfit.data.manifest import Manifest
from medfit.data.studies import key_slices, n_slices, read_study, study_label, study_manifest, uses_studies
from medfit.io.medmnist import is_npz_ref
from medfit.preprocess.prepared import load_prepared, prepared_geometry
from medfit.preprocess.recipe import Recipe
from medfit.preprocess.sampling import sampled_slices


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
        self.geometry = prepared_geometry(recipe)  # slices as the recipe makes them (a reformat changes them)

    def study_slices(self, row: Row) -> list[int]:
        """Every slice of a study (within the mask label when the row has a mask), in the recipe's geometry."""
        n, mask = self.geometry(row, bool(row.mask))
        if mask is not None:
            return [int(i) for i in np.flatnonzero(mask_areas(mask, study_label(row, self.volume)) > 0)]
        return list(range(n))

    def slices(self, row: Row, indices: list[int] | None) -> np.ndarray:
        """Prepared slices (len(indices), H, W) in [0, 1]; ``indices`` None: every slice (within the mask label)."""
        size = self.recipe.image_size
        if is_npz_ref(row.image):
            vol = unit_range(read_study(row.image))
            return resize_slices(vol if indices is None else vol[indices], size)
        indices = self.study_slices(row) if indices is None else indices
        label = study_label(row, self.volume)
        at = Row(row.image, None, row.mask, label if row.mask else None)
        return np.stack([load_prepared(at.at_slice(i), self.slice_recipe)[0] for i in indices])

    def model_input(self, series) -> np.ndarray:
        """One study row (a manifest row) as the model input of ``volume.mode`` (float32)."""
        row, v, channels = Row.of(series), self.volume, self.recipe.channels
        if v.mode == "slice":
            # a row without slice_index (a new study to predict): its key slice by volume.key_slice, as in training
            index = row.slice_index if row.slice_index is not None else key_slices(row, v, self.geometry)[0]
            return np.repeat(self.slices(row, [index]), channels, axis=0)
        if v.mode == "2.5d":
            return self.slices(row, key_slices(row, v, self.geometry)[1])
        depth = v.slices or self.recipe.image_size
        if v.mode == "slice_set" or v.stride:  # only the slices picked are prepared, in the recipe's geometry
            every = None if is_npz_ref(row.image) else self.study_slices(row)
            count = len(every) if every is not None else n_slices(row.image)
            pick = sampled_slices(count, depth, v.stride)  # evenly spread, or volume.stride apart around the middle
            stack = self.slices(row, pick if every is None else [every[i] for i in pick])
            return stack[:, None] if v.mode == "slice_set" else stack[None]
        return resample_depth(self.slices(row, None), depth)[None]


def study_rows(manifest: Manifest, cfg: ExperimentConfig) -> Manifest:
    """The rows training reads: key slices (and neighbour rows) resolved in the geometry of the experiment's recipe."""
    return study_manifest(manifest, cfg, prepared_geometry(Recipe.of_experiment(cfg)))


def input_loader(cfg: ExperimentConfig, table: pd.DataFrame) -> tuple[Callable[[object], np.ndarray], bool]:
    """How the rows of ``table`` become model inputs under ``cfg`` (training, predict and explain alike), and whether
    they are studies (stored as float16 in memory)."""
    recipe = Recipe.of_experiment(cfg)
    if uses_studies(table, cfg.volume):
        return StudyReader(recipe, cfg.volume).model_input, True
    return (lambda row: load_prepared(Row.of(row), recipe)), False
