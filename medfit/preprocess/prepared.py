"""Prepare one manifest row: read it, apply the recipe's ops, resize to the model's input, cache the result on disk."""
from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from medfit.data.rows import Row
from medfit.data.studies import stored_geometry
from medfit.errors import DataError
from medfit.io import is_volume_ref, read_image, read_mask, read_volume
from medfit.io.images import is_image_file, open_image, to_array
from medfit.io.medmnist import is_npz_ref, parse_npz_ref, read_npz_entry
from medfit.preprocess.cache import PreparedCache, array_digest, cache_key, file_digest
from medfit.preprocess.crop import resize_pad, resize_square
from medfit.preprocess.intensity import to_unit_range
from medfit.preprocess.recipe import Recipe
from medfit.preprocess.recipes import Item, apply_ops, take_slice, volume_op_count


def _finish(image: np.ndarray, recipe: Recipe, source: str) -> np.ndarray:
    """float32 in [0, 1] (z-scores when the recipe ends in zscore), square ``image_size``, ``channels`` first."""
    image_size, channels = recipe.image_size, recipe.channels
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim == 3 and channels == 1:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.dtype != np.uint8 and not np.all(np.isfinite(image)):
        raise DataError(f"{source}: the image holds NaN or infinite values; fix or drop it")
    if recipe.standardised:  # z-scores stay z-scores; padding takes the image's darkest value, as 0 is in [0, 1]
        image = image.astype(np.float32, copy=False)
        image = resize_pad(image, image_size, float(image.min())) if recipe.resize == "pad" \
            else resize_square(image, image_size)
    else:
        image = to_unit_range(image)
        image = resize_pad(image, image_size) if recipe.resize == "pad" else resize_square(image, image_size)
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
    if is_image_file(ref):
        with open_image(ref) as img:
            if img.format == "JPEG":  # DCT-domain downscaling and colour conversion: several times faster
                img.draft("L" if gray else img.mode, (image_size, image_size))
            return to_array(img, ref)
    return read_image(ref)


def _is_plain(ref: str) -> bool:
    return is_npz_ref(ref) or (is_image_file(ref) and not is_volume_ref(ref))


def prepare(row: Row, recipe: Recipe) -> np.ndarray:
    """Read and preprocess one row without the disk cache: float32 (channels, size, size), as ``_finish`` scales it."""
    ref = row.image
    if not recipe.ops and row.mask is None and _is_plain(ref):
        return _finish(_read_plain(ref, recipe.image_size, recipe.channels == 1), recipe, ref)
    if is_volume_ref(ref):
        item = dataclasses.replace(volume_stage(row, recipe), meta=dict(volume_stage(row, recipe).meta),
                                   roi_label=row.roi_label)
        item = take_slice(item, row.slice_index)
    else:
        item = Item(array=np.zeros((1, 1), np.float32), meta={"source": ref}, roi_label=row.roi_label)
        _read_image_item(item, row)
        if not np.all(np.isfinite(item.array)):
            raise DataError(f"{ref}: the image holds NaN or infinite values; fix or drop it")
        item = apply_ops(item, list(recipe.ops[:volume_op_count(list(recipe.ops))]))
    item = apply_ops(item, list(recipe.ops[volume_op_count(list(recipe.ops)):]))
    return _finish(item.array, recipe, ref)


# The last volumes read, after the recipe's volume ops (reformat), kept so that their other slices, slice counts and
# masks come without reading and resampling the series again.
_VOLUMES: OrderedDict[tuple, Item] = OrderedDict()
VOLUMES_KEPT = 2


def volume_stage(row: Row, recipe: Recipe) -> Item:
    """A study row as a volume (and mask volume) after the recipe's volume ops, before slicing (shared: do not edit)."""
    specs = list(recipe.ops[:volume_op_count(list(recipe.ops))])
    key = (_stamp(row.image), _stamp(row.mask), json.dumps(specs, sort_keys=True, default=str),
           recipe.irregular_series, recipe.on_bad_file)
    if key in _VOLUMES:
        _VOLUMES.move_to_end(key)
        return _VOLUMES[key]
    item = Item(array=np.zeros((1, 1), np.float32), meta={"source": row.image})
    _read_volume_item(item, row, recipe)
    item = apply_ops(item, specs)
    _VOLUMES[key] = item
    while len(_VOLUMES) > VOLUMES_KEPT:
        _VOLUMES.popitem(last=False)
    return item


def _stamp(ref: str | None) -> tuple:
    """A file's (or a series folder's files') names, sizes and modification times: a changed file is read again."""
    path = Path(ref or "")
    if not ref or not path.exists():
        return (ref,)  # the reader says what is missing
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return tuple((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()])


def prepared_geometry(recipe: Recipe):
    """The slice count and mask of study rows in the geometry the model sees (after ``recipe``'s volume ops), as
    ``data.studies`` asks for them: ``geometry(row, with_mask) -> (slices, mask or None)``."""
    def geometry(row: Row, with_mask: bool) -> tuple[int, np.ndarray | None]:
        if not is_volume_ref(row.image):
            return stored_geometry(row, with_mask)
        item = volume_stage(row, recipe)
        mask = item.mask_volume.array if with_mask and item.mask_volume is not None else None
        return int(item.volume.array.shape[0]), mask
    return geometry


def _read_volume_item(item: Item, row: Row, recipe: Recipe) -> None:
    """Fill a recipe item with a volume (and its mask volume) for ops that work in 3D."""
    options = {"irregular": recipe.irregular_series, "on_bad_file": recipe.on_bad_file} \
        if Path(row.image).is_dir() else {}
    item.volume = read_volume(row.image, **options)
    item.meta.update(item.volume.meta)
    if row.mask:
        item.mask_volume = read_mask(row.mask, like=item.volume)  # integer labels on the image's voxel grid


def _read_image_item(item: Item, row: Row) -> None:
    """Fill a recipe item with a 2D image (grey, [0, 1] for 8-bit) and its mask."""
    ref = row.image
    if row.slice_index is not None and not ref.lower().endswith(".npz") and "::" not in ref:
        item.array = read_image(ref, row.slice_index)
    else:
        item.array = read_image(ref)
    if item.array.ndim == 3 and item.array.shape[-1] in (3, 4):  # ops work on grayscale
        item.array = cv2.cvtColor(np.ascontiguousarray(item.array[..., :3]), cv2.COLOR_RGB2GRAY)
    if item.array.dtype == np.uint8:
        item.array = item.array.astype(np.float32) / 255.0
    if row.mask:
        item.mask = read_image(row.mask, row.slice_index)
        if item.mask.shape[:2] != item.array.shape[:2]:
            raise DataError(f"{row.mask}: mask shape {item.mask.shape} differs from the image {ref} shape "
                            f"{item.array.shape}")


def prepared_key(row: Row, recipe: Recipe) -> str:
    """The cache key: source content hash, the recipe's parameters, the row's slice/mask/ROI, medfit version."""
    ref = row.image
    if is_npz_ref(ref):
        digest = array_digest(read_npz_entry(ref)) + parse_npz_ref(ref)[1]
    else:
        path = ref.rpartition("::")[0] if "::" in ref else ref
        if not Path(path).exists():
            raise DataError(f"{path}: image file not found; check the manifest path")
        digest = file_digest(path) + (ref[len(path):] if "::" in ref else "")
    params = {**recipe.params, "slice_index": row.slice_index, "mask": file_digest(row.mask) if row.mask else None,
              "roi_label": row.roi_label}
    return cache_key(digest, params)


def load_prepared(row: Row, recipe: Recipe) -> np.ndarray:
    """Read ``row``, apply the recipe, resize: float32 (channels, image_size, image_size) in [0, 1] (z-scores for a
    recipe that ends in zscore).

    Results are cached in ``recipe.cache_dir`` (when set) keyed by content hash, parameters and medfit version.
    Plain images and MedMNIST entries with no ops skip the disk cache: decoding them is as cheap as reading it.
    """
    if not recipe.cache_dir or (not recipe.ops and row.mask is None and _is_plain(row.image)):
        return prepare(row, recipe)
    cache = PreparedCache(recipe.cache_dir)
    key = prepared_key(row, recipe)
    out = cache.get(key, (recipe.channels, recipe.image_size, recipe.image_size), unit=not recipe.standardised)
    if out is None:
        out = prepare(row, recipe)
        cache.put(key, out)
    return out
