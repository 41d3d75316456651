"""Studies: a manifest row is a study (NIfTI / DICOM series with optional mask, or a 3D MedMNIST entry).

This module resolves key slices and neighbour rows; medfit.preprocess.study turns a study row into a model input.
Input modes (``volume.mode``): ``slice`` (the key slice, plus k neighbour rows per study when asked), ``2.5d`` (key
slice and k neighbours each side stacked as channels), ``slice_set`` (every slice, for a shared 2D encoder with
attention pooling) and ``3d`` (the volume, resampled to ``slices`` x image_size x image_size).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from medfit.config import ExperimentConfig, VolumeConfig
from medfit.data.manifest import Manifest
from medfit.data.rows import Row, cell
from medfit.data.slices import choose_key_slice, mask_areas, neighbour_indices
from medfit.errors import DataError
from medfit.io import read_volume, require_finite
from medfit.io.medmnist import is_npz_ref, read_npz_entry


def read_study(ref: str) -> np.ndarray:
    """The voxels of a study as (slices, rows, columns): a 3D MedMNIST entry, NIfTI file or DICOM series."""
    ref = str(ref)
    arr = read_npz_entry(ref) if is_npz_ref(ref) else read_volume(ref).array
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise DataError(f"{ref}: expected a 3D volume (slices, rows, columns), got shape {arr.shape}")
    return require_finite(arr, ref)


def study_label(row: Row, volume: VolumeConfig) -> int | None:
    """The mask label that defines the key slice: volume.mask_label, else the row's roi_label, else any label."""
    return volume.mask_label or row.roi_label


def n_slices(ref: str) -> int:
    """The number of slices of a study (axis 0)."""
    return int(read_npz_entry(ref).shape[0]) if is_npz_ref(ref) else int(read_study(ref).shape[0])


# A study row's slice count and (when asked) mask volume in the geometry the model sees:
# ``geometry(row, with_mask) -> (slices, mask or None)``. ``stored_geometry`` reads the files as stored; a recipe
# that reformats gives other slices (medfit.preprocess.prepared.prepared_geometry).
Geometry = Callable[[Row, bool], tuple[int, "np.ndarray | None"]]


def stored_geometry(row: Row, with_mask: bool) -> tuple[int, np.ndarray | None]:
    """The slice count and mask of a study as stored (no volume ops)."""
    mask = read_study(row.mask) if row.mask and with_mask else None
    return (int(mask.shape[0]) if mask is not None else n_slices(row.image)), mask


def key_slices(row: Row, volume: VolumeConfig, geometry: Geometry = stored_geometry) -> tuple[int, list[int]]:
    """(key slice, the 2k+1 slices key-k .. key+k) of one study row, by ``volume.key_slice``, counted in
    ``geometry``'s slices."""
    n, mask = geometry(row, volume.key_slice == "mask")
    label = study_label(row, volume)
    key = choose_key_slice(volume.key_slice, n, row.slice_index, mask, label, row.image)
    valid = mask_areas(mask, label) > 0 if mask is not None else None
    return key, neighbour_indices(key, volume.neighbours, n, valid)


def study_manifest(manifest: Manifest, cfg: ExperimentConfig, geometry: Geometry = stored_geometry) -> Manifest:
    """Resolve each study's key slice into ``slice_index``; slice mode with k neighbours gives 2k+1 rows per study
    (column ``offset`` -k..k, ``study_id`` shared) for augmented training and prediction. Slices are counted in
    ``geometry`` (``medfit.preprocess.study.study_rows`` passes the recipe's: reformatted volumes have other slices)."""
    v = cfg.volume
    if v.mode in ("slice_set", "3d") or (v.mode == "slice" and v.key_slice == "given" and not v.neighbours):
        return manifest
    rows = []
    for _, row in manifest.df.iterrows():
        key, indices = key_slices(Row.of(row), v, geometry)
        study = cell(row, "study_id") or row["image"]
        roi = cell(row, "roi_label")
        study = f"{study}#{int(float(roi))}" if roi is not None and v.mode == "slice" else study
        if v.mode == "2.5d":
            rows.append({**row.to_dict(), "slice_index": key, "study_id": str(study)})
            continue
        for offset, idx in zip(range(-v.neighbours, v.neighbours + 1), indices):
            rows.append({**row.to_dict(), "slice_index": idx, "offset": offset, "study_id": str(study)})
    return manifest.with_df(pd.DataFrame(rows))


def uses_studies(table: pd.DataFrame, volume: VolumeConfig) -> bool:
    """True when rows need study reading (volume modes, slice indices or masks) rather than plain images."""
    return volume.mode != "slice" or bool(volume.neighbours) or "slice_index" in table or (
        "mask" in table and table["mask"].notna().any())


