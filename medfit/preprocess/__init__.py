"""Preprocessing: read an image reference, apply the recipe and ops, resize, and cache the result on disk.

``load_prepared`` is the only entry point the datasets need; see ``recipes.py`` for the operations and named recipes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from medfit.errors import DataError

__all__ = ["load_prepared", "prepare", "resolve_ops", "cache_dir_for", "cached_preprocess", "RECIPES", "OPS"]


def __getattr__(name: str):
    if name in ("RECIPES", "OPS", "resolve_ops"):
        from medfit.preprocess import recipes

        return getattr(recipes, name)
    raise AttributeError(name)


def resolve_ops(recipe: str, ops: list[dict]) -> list[dict]:
    """The recipe's operations followed by the explicit ops, with every parameter filled in."""
    from medfit.preprocess.recipes import resolve_ops as _resolve

    return _resolve(recipe, ops)


def cache_dir_for(cfg) -> Path:
    """The cache folder for an experiment: ``preprocess.cache_dir``, else ``<output_dir>/.cache``."""
    return Path(cfg.preprocess.cache_dir or Path(cfg.output_dir) / ".cache")


def cached_preprocess(cfg):
    """``cfg.preprocess`` with its cache folder resolved (``cache_dir_for``), as every experiment reader uses it."""
    import dataclasses

    return dataclasses.replace(cfg.preprocess, cache_dir=str(cache_dir_for(cfg)))


def _finish(image: np.ndarray, image_size: int, channels: int, resize: str, source: str) -> np.ndarray:
    """[0, 1] float32, square ``image_size``, ``channels`` first."""
    from medfit.preprocess.crop import resize_pad, resize_square
    from medfit.preprocess.intensity import to_unit_range

    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim == 3 and channels == 1:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.dtype != np.uint8 and not np.all(np.isfinite(image)):
        raise DataError(f"{source}: the image holds NaN or infinite values; fix or drop it")
    image = to_unit_range(image)
    image = resize_pad(image, image_size) if resize == "pad" else resize_square(image, image_size)
    image = np.clip(image, 0.0, 1.0)
    if image.ndim == 2:
        image = np.repeat(image[None], channels, axis=0) if channels != 1 else image[None]
    else:
        image = np.moveaxis(image, -1, 0)
    if image.shape[0] != channels:
        raise DataError(f"{source}: cannot make {channels} channels from an image with {image.shape[0]}")
    return np.ascontiguousarray(image, dtype=np.float32)


def _read_plain(ref: str, image_size: int, gray: bool) -> np.ndarray:
    """A PNG/JPEG (decoded at reduced scale when it is much larger than the target) or a MedMNIST entry."""
    from medfit.io import read_image
    from medfit.io.images import is_image_file, open_image, to_array

    if is_image_file(ref):
        with open_image(ref) as img:
            if img.format == "JPEG":  # DCT-domain downscaling and colour conversion: several times faster
                img.draft("L" if gray else img.mode, (image_size, image_size))
            return to_array(img, ref)
    return read_image(ref)


def _is_plain(ref: str) -> bool:
    from medfit.io import is_volume_ref
    from medfit.io.images import is_image_file
    from medfit.io.medmnist import is_npz_ref

    return is_npz_ref(ref) or (is_image_file(ref) and not is_volume_ref(ref))


def prepare(ref: str, pre_cfg, image_size: int, channels: int, slice_index: int | None = None,
            mask: str | None = None, roi_label: int | None = None) -> np.ndarray:
    """Read and preprocess one image without the disk cache: float32 (channels, image_size, image_size) in [0, 1]."""
    from medfit.io import is_volume_ref, read_image, read_volume
    from medfit.preprocess.recipes import Item, resolve_ops, run_ops

    ref = str(ref)
    resolved = resolve_ops(pre_cfg.recipe, pre_cfg.ops)
    if not resolved and mask is None and _is_plain(ref):
        return _finish(_read_plain(ref, image_size, channels == 1), image_size, channels, pre_cfg.resize, ref)
    item = Item(array=np.zeros((1, 1), np.float32), meta={"source": ref}, roi_label=roi_label)
    if is_volume_ref(ref):
        options = {"irregular": pre_cfg.irregular_series, "on_bad_file": pre_cfg.on_bad_file} \
            if Path(ref).is_dir() else {}
        item.volume = read_volume(ref, **options)
        item.meta.update(item.volume.meta)
        if mask:
            item.mask_volume = read_volume(mask)
            if item.mask_volume.array.shape != item.volume.array.shape:
                raise DataError(f"{mask}: mask shape {item.mask_volume.array.shape} differs from the image "
                                f"{ref} shape {item.volume.array.shape}")
    else:
        if slice_index is not None and not ref.lower().endswith(".npz") and "::" not in ref:
            item.array = read_image(ref, slice_index)
        else:
            item.array = read_image(ref)
        if item.array.ndim == 3 and item.array.shape[-1] in (3, 4):  # ops work on grayscale
            item.array = cv2.cvtColor(np.ascontiguousarray(item.array[..., :3]), cv2.COLOR_RGB2GRAY)
        if item.array.dtype == np.uint8:
            item.array = item.array.astype(np.float32) / 255.0
        if mask:
            item.mask = read_image(mask, slice_index)
            if item.mask.shape[:2] != item.array.shape[:2]:
                raise DataError(f"{mask}: mask shape {item.mask.shape} differs from the image {ref} shape "
                                f"{item.array.shape}")
    if item.volume is None and not np.all(np.isfinite(item.array)):
        raise DataError(f"{ref}: the image holds NaN or infinite values; fix or drop it")
    item = run_ops(item, resolved, slice_index)
    return _finish(item.array, image_size, channels, pre_cfg.resize, ref)


def prepared_key(ref: str, pre_cfg, image_size: int, channels: int, slice_index: int | None = None,
                 mask: str | None = None, roi_label: int | None = None) -> str:
    """The cache key: source content hash, resolved ops, output geometry, reading options, medfit version."""
    from medfit.io.medmnist import is_npz_ref, parse_npz_ref, read_npz_entry
    from medfit.preprocess.cache import array_digest, cache_key, file_digest
    from medfit.preprocess.recipes import resolve_ops

    ref = str(ref)
    if is_npz_ref(ref):
        digest = array_digest(read_npz_entry(ref)) + parse_npz_ref(ref)[1]
    else:
        path = ref.rpartition("::")[0] if "::" in ref else ref
        if not Path(path).exists():
            raise DataError(f"{path}: image file not found; check the manifest path")
        digest = file_digest(path) + (ref[len(path):] if "::" in ref else "")
    params = {
        "ops": resolve_ops(pre_cfg.recipe, pre_cfg.ops), "image_size": int(image_size), "channels": int(channels),
        "resize": pre_cfg.resize, "irregular_series": pre_cfg.irregular_series, "slice_index": slice_index,
        "mask": file_digest(mask) if mask else None, "roi_label": roi_label,
    }
    return cache_key(digest, params)


def load_prepared(ref: str, pre_cfg, image_size: int, channels: int, slice_index: int | None = None,
                  mask: str | None = None, roi_label: int | None = None) -> np.ndarray:
    """Read ``ref``, apply ``pre_cfg``'s recipe and ops, resize: float32 (channels, image_size, image_size) in [0, 1].

    Results are cached in ``pre_cfg.cache_dir`` (when set) keyed by content hash, parameters and medfit version.
    Plain images and MedMNIST entries with no ops skip the disk cache: decoding them is as cheap as reading it.
    """
    from medfit.preprocess.cache import PreparedCache

    ref = str(ref)
    no_ops = not pre_cfg.recipe and not pre_cfg.ops
    if not pre_cfg.cache_dir or (no_ops and mask is None and _is_plain(ref)):
        return prepare(ref, pre_cfg, image_size, channels, slice_index, mask, roi_label)
    cache = PreparedCache(pre_cfg.cache_dir)
    key = prepared_key(ref, pre_cfg, image_size, channels, slice_index, mask, roi_label)
    out = cache.get(key, (channels, image_size, image_size))
    if out is None:
        out = prepare(ref, pre_cfg, image_size, channels, slice_index, mask, roi_label)
        cache.put(key, out)
    return out


def _optional_int(value) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    return int(float(value))


def row_inputs(row, base: str | Path | None = None) -> dict:
    """``slice_index``, ``mask`` and ``roi_label`` of a manifest row (missing or empty cells -> None).

    A relative mask path that does not exist as given is resolved against ``base`` (the manifest CSV's folder).
    """
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    mask = get("mask", None)
    if mask is None or (isinstance(mask, float) and np.isnan(mask)) or str(mask).strip() == "":
        mask = None
    else:
        mask = str(mask)
        if base is not None and not Path(mask).is_absolute() and not Path(mask).exists():
            mask = str(Path(base) / mask)
    return {"slice_index": _optional_int(get("slice_index", None)), "mask": mask,
            "roi_label": _optional_int(get("roi_label", None))}


def load_prepared_row(row, cfg, base: str | Path | None = None) -> np.ndarray:
    """``load_prepared`` for one manifest row (image, optional slice_index, mask, roi_label), cached in the
    experiment's cache folder (``preprocess.cache_dir``, else ``<output_dir>/.cache``)."""
    pre = cached_preprocess(cfg)
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    return load_prepared(str(get("image")), pre, cfg.data.image_size, cfg.data.channels, **row_inputs(row, base))
