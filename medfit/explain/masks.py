"""Reference masks in the frame of a model input: a row's label mask moved by the recipe's geometric ops (reformat,
ROI crop) and resized as the image was, so saliency maps and masks can be compared pixel by pixel."""
from __future__ import annotations

import numpy as np

from medfit.config import VolumeConfig
from medfit.data.rows import Row
from medfit.data.studies import study_label
from medfit.io import is_volume_ref, read_image, read_volume
from medfit.preprocess.crop import resize_pad, resize_square
from medfit.preprocess.recipe import Recipe
from medfit.preprocess.recipes import Item, run_ops

GEOMETRY_OPS = ("reformat", "crop")  # the recipe ops that move pixels; every other op changes intensities only


def _mask_item(row: Row, label: int | None) -> Item:
    """A recipe item whose image and mask are both the row's label mask."""
    item = Item(array=np.zeros((1, 1), np.float32), meta={"source": row.mask}, roi_label=label)
    if is_volume_ref(row.mask):
        item.volume = item.mask_volume = read_volume(row.mask)
    else:
        item.mask = read_image(row.mask, row.slice_index)
        item.array = item.mask.astype(np.float32)
    return item


def prepared_mask(series, recipe: Recipe, volume: VolumeConfig) -> np.ndarray | None:
    """(image_size, image_size) bool mask of the row's region (its ROI label, else any label) in the model input's
    frame, or None when the row has no mask."""
    row = Row.of(series)
    if row.mask is None:
        return None
    label = study_label(row, volume)
    ops = [op for op in recipe.ops if op["name"] in GEOMETRY_OPS]
    item = run_ops(_mask_item(row, label), ops, row.slice_index)
    region = ((item.mask == label) if label else (item.mask > 0)).astype(np.float32)
    resize = resize_pad if recipe.resize == "pad" else resize_square
    return resize(region, recipe.image_size) >= 0.5
