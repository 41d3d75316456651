"""A vertebral-body mask moved into the model input's frame (ROI crop with 10 % margin, squared, resized to 48 px)."""
from pathlib import Path

import numpy as np
import pandas as pd

from medfit.config import load_config
from medfit.explain.masks import prepared_mask
from medfit.preprocess.recipe import Recipe

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ovcf-mri.yaml"


def test_body_mask_lands_where_the_crop_put_the_body(shared_data, tmp_path):
    row = pd.read_csv(CONFIG.with_suffix(".csv")).iloc[0].copy()  # exam 02, slice 24, vertebral body 1
    row["image"], row["mask"] = (str((CONFIG.parent / row[c]).resolve()) for c in ("image", "mask"))
    cfg = load_config(CONFIG, [f"preprocess.cache_dir={tmp_path}", "data.image_size=48"])
    mask = prepared_mask(row, Recipe.of_experiment(cfg), cfg.volume)
    rows, cols = np.nonzero(mask)
    # the crop is the body's box squared on its longer (vertical) side and grown by 10 % each way: the body spans
    # 1/1.2 of the 48 px input, rows 4..43, and sits centred across (column centre 23.5)
    assert mask.shape == (48, 48) and (rows.min(), rows.max()) == (4, 43)
    assert abs((cols.min() + cols.max()) / 2 - 23.5) <= 1
    assert prepared_mask(row.drop("mask"), Recipe.of_experiment(cfg), cfg.volume) is None
