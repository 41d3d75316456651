"""Study datasets: a manifest row is a study (NIfTI / DICOM series with optional mask, or a 3D MedMNIST entry).

Input modes (``volume.mode``): ``slice`` (the key slice, plus k neighbour rows per study when asked), ``2.5d`` (key
slice and k neighbours each side stacked as channels), ``slice_set`` (every slice, for a shared 2D encoder with
attention pooling) and ``3d`` (the volume, resampled to ``slices`` x image_size x image_size).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest
from medfit.data.slices import choose_key_slice, mask_areas, neighbour_indices
from medfit.errors import DataError


def _cell(row, name: str):
    value = row.get(name, None)
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return None
    return value


def manifest_base(cfg: ExperimentConfig) -> Path | None:
    """The folder relative mask paths resolve against: the manifest CSV's folder (None for other sources)."""
    from medfit.data.manifest import resolve_data_dir, resolve_root

    if cfg.data.source not in ("csv", "manifest"):
        return None
    return resolve_root(cfg.data, resolve_data_dir(cfg.data)).parent


def mask_path(row, base: Path | None) -> str | None:
    """The row's mask path (resolved against ``base`` when relative and not found as given), or None."""
    mask = _cell(row, "mask")
    if mask is None:
        return None
    mask = str(mask)
    if base is not None and not Path(mask).is_absolute() and not Path(mask).exists():
        mask = str(base / mask)
    return mask


def read_study(ref: str) -> np.ndarray:
    """The voxels of a study as (slices, rows, columns): a 3D MedMNIST entry, NIfTI file or DICOM series."""
    from medfit.io import read_volume, require_finite
    from medfit.io.medmnist import is_npz_ref, read_npz_entry

    ref = str(ref)
    arr = read_npz_entry(ref) if is_npz_ref(ref) else read_volume(ref).array
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise DataError(f"{ref}: expected a 3D volume (slices, rows, columns), got shape {arr.shape}")
    return require_finite(arr, ref)


def study_label(row, cfg: ExperimentConfig) -> int | None:
    """The mask label that defines the key slice: volume.mask_label, else the row's roi_label, else any label."""
    if cfg.volume.mask_label:
        return cfg.volume.mask_label
    roi = _cell(row, "roi_label")
    return int(float(roi)) if roi is not None else None


def _n_slices(ref: str) -> int:
    from medfit.io.medmnist import is_npz_ref, read_npz_entry

    return int(read_npz_entry(ref).shape[0]) if is_npz_ref(ref) else int(read_study(ref).shape[0])


def key_slices(row, cfg: ExperimentConfig, base: Path | None = None) -> tuple[int, list[int]]:
    """(key slice, the 2k+1 slices key-k .. key+k) of one study row, by ``volume.key_slice``."""
    v = cfg.volume
    ref = str(row["image"])
    mask_file = mask_path(row, base)
    mask = read_study(mask_file) if mask_file and v.key_slice == "mask" else None
    label = study_label(row, cfg)
    given = _cell(row, "slice_index")
    n = int(mask.shape[0]) if mask is not None else _n_slices(ref)
    key = choose_key_slice(v.key_slice, n, int(float(given)) if given is not None else None, mask, label, ref)
    valid = mask_areas(mask, label) > 0 if mask is not None else None
    return key, neighbour_indices(key, v.neighbours, n, valid)


def study_manifest(manifest: Manifest, cfg: ExperimentConfig) -> Manifest:
    """Resolve each study's key slice into ``slice_index``; slice mode with k neighbours gives 2k+1 rows per study
    (column ``offset`` -k..k, ``study_id`` shared) for augmented training and prediction."""
    v = cfg.volume
    if v.mode in ("slice_set", "3d") or (v.mode == "slice" and v.key_slice == "given" and not v.neighbours):
        return manifest
    base = manifest_base(cfg)
    rows = []
    for _, row in manifest.df.iterrows():
        key, indices = key_slices(row, cfg, base)
        study = _cell(row, "study_id") or row["image"]
        roi = _cell(row, "roi_label")
        study = f"{study}#{int(float(roi))}" if roi is not None and v.mode == "slice" else study
        if v.mode == "2.5d":
            rows.append({**row.to_dict(), "slice_index": key, "study_id": str(study)})
            continue
        for offset, idx in zip(range(-v.neighbours, v.neighbours + 1), indices):
            rows.append({**row.to_dict(), "slice_index": idx, "offset": offset, "study_id": str(study)})
    df = pd.DataFrame(rows).reset_index(drop=True)
    return Manifest(df, manifest.label_columns, manifest.class_names, manifest.task)


def _unit(arr: np.ndarray) -> np.ndarray:
    """uint8 -> /255; anything else min-max over the study (constant -> zeros)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _resize_slices(stack: np.ndarray, size: int) -> np.ndarray:
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


class StudyLoader:
    """Reads prepared slices of a study row: the preprocessing recipe per slice for NIfTI/DICOM, [0, 1] scaling and
    resizing for 3D MedMNIST entries."""

    def __init__(self, cfg: ExperimentConfig):
        from medfit.preprocess import cached_preprocess

        self.cfg = cfg
        self.pre = cached_preprocess(cfg)
        self.base = manifest_base(cfg)

    def slices(self, row, indices: list[int] | None) -> np.ndarray:
        """Prepared slices (len(indices), H, W) in [0, 1]; ``indices`` None: every slice (within the mask label)."""
        from medfit.io.medmnist import is_npz_ref
        from medfit.preprocess import load_prepared

        size = self.cfg.data.image_size
        ref = str(row["image"])
        if is_npz_ref(ref):
            vol = _unit(read_study(ref))
            return _resize_slices(vol if indices is None else vol[indices], size)
        mask = mask_path(row, self.base)
        label = study_label(row, self.cfg)
        if indices is None:
            if mask:
                indices = list(np.flatnonzero(mask_areas(read_study(mask), label) > 0))
            else:
                indices = list(range(_n_slices(ref)))
        roi = label if mask else None
        return np.stack([load_prepared(ref, self.pre, size, 1, int(i), mask, roi)[0] for i in indices])

    def study(self, row) -> np.ndarray:
        """One study as the model input of ``volume.mode`` (float32)."""
        v, channels = self.cfg.volume, self.cfg.data.channels
        if v.mode == "slice":
            idx = _cell(row, "slice_index")
            img = self.slices(row, [int(float(idx))] if idx is not None else None)
            img = img[len(img) // 2] if idx is None else img[0]
            return np.repeat(img[None], channels, axis=0)
        if v.mode == "2.5d":
            return self.slices(row, key_slices(row, self.cfg, self.base)[1])
        stack = self.slices(row, None)
        depth = v.slices or self.cfg.data.image_size
        if v.mode == "slice_set":
            pick = np.linspace(0, len(stack) - 1, depth).round().astype(int)
            return stack[pick][:, None]
        return resample_depth(stack, depth)[None]


class StudyDataset(Dataset):
    """Studies of one manifest in the input shape of ``volume.mode``, held in memory (float16), with labels."""

    def __init__(self, manifest: Manifest, cfg: ExperimentConfig, progress: bool = True, desc: str = "loading"):
        self.manifest = manifest
        loader = StudyLoader(cfg)
        rows = [r for _, r in manifest.df.iterrows()]
        items = [loader.study(r) for r in tqdm(rows, desc=desc, disable=not progress, leave=False)]
        shape = items[0].shape if items else (1,)
        self.images = torch.from_numpy(np.stack(items).astype(np.float16)) if items else torch.zeros((0, *shape))
        labels = manifest.labels()
        self.labels = torch.from_numpy(labels.astype(np.float32 if manifest.task != "multiclass" else np.int64))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i].float(), self.labels[i], i


def uses_studies(manifest: Manifest, cfg: ExperimentConfig) -> bool:
    """True when rows need study reading (volume modes, slice indices or masks) rather than plain images."""
    v = cfg.volume
    return v.mode != "slice" or bool(v.neighbours) or "slice_index" in manifest.df or (
        "mask" in manifest.df and manifest.df["mask"].notna().any())


def dataset_for(manifest: Manifest, cfg: ExperimentConfig, progress: bool = True, desc: str = "loading") -> Dataset:
    """The dataset of a manifest split: ``StudyDataset`` for study rows, else the plain ``ImageDataset``."""
    from medfit.data.datasets import ImageDataset

    if uses_studies(manifest, cfg):
        return StudyDataset(manifest, cfg, progress, desc)
    return ImageDataset(manifest, cfg, progress, desc)
