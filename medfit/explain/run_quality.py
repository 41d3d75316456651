"""The quality check of a run's explanations, on a few cases of one split: is the target layer's map fine enough,
is the map faithful (ROAD against random maps), does it point into the reference masks where rows have them
(pointing game, in-mask saliency share, each against random maps), and does it pass the randomisation check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from medfit.explain.cam import find_target_layer
from medfit.explain.gallery import _with_row_inputs, model_for_rows, saliency_maps
from medfit.explain.masks import prepared_mask
from medfit.explain.quality import check_target_layer, faithfulness, localisation
from medfit.explain.sanity import randomisation_check
from medfit.run_folder import json_safe
from medfit.models import load_network
from medfit.preprocess.recipe import Recipe
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder
from medfit.task import Task

PERCENTILES = (20, 50, 80)  # ROAD cuts: three keep it cheap (each is two forward passes per map)
N_IMAGES = 8
ROAD_RANDOM = 2  # random maps per image for ROAD (each costs the image's imputations again)
RANDOM_MAPS = 200  # per image for localisation (cheap: no model); the pointing-game baseline's SD ~ 0.5 / sqrt(200 n)


def quality_rows(run: RunFolder, split: str, n: int) -> pd.DataFrame:
    """Up to ``n`` cases of ``split`` (val when absent) spread over the classes, key slices only for study runs,
    with the manifest's mask and ROI columns; rows with a mask first."""
    pred = run.read_predictions()
    split = split if split in set(pred["split"]) else "val"
    rows = _with_row_inputs(run, pred[pred["split"] == split])
    if "offset" in rows:
        rows = rows[rows["offset"] == 0]
    if "mask" in rows:
        rows = rows.assign(_has=rows["mask"].notna()).sort_values("_has", ascending=False, kind="stable")
    task = Task.of(run.read_config().data)
    strata = pd.Series(task.strata(rows), index=rows.index)
    per = max(1, -(-n // max(strata.nunique(), 1)))
    picked = rows.groupby(strata, sort=True, group_keys=False).head(per)
    return picked.head(n).drop(columns="_has", errors="ignore").reset_index(drop=True)


def aligned_masks(rows: pd.DataFrame, cfg) -> tuple[np.ndarray, np.ndarray]:
    """(indices of rows with a non-empty mask, their masks in the model input's frame)."""
    recipe = Recipe.of_experiment(cfg)
    keep, masks = [], []
    for i, (_, row) in enumerate(rows.iterrows()):
        mask = prepared_mask(row, recipe, cfg.volume)
        if mask is not None and mask.any():
            keep.append(i)
            masks.append(mask)
    return np.array(keep, dtype=int), np.array(masks, dtype=bool)


def explanation_quality(run: RunFolder, split: str = "test", n_images: int = N_IMAGES, method: str = "gradcam",
                        target_layer: str | None = None, seed: int = 0) -> dict:
    """Every check on up to ``n_images`` cases: target layer, ROAD faithfulness, localisation, randomisation."""
    cfg = run.read_config()
    rows = quality_rows(run, split, n_images)
    model = model_for_rows(load_network(run).eval(), run, rows)  # a covariate run: these rows' covariates bound
    load, _ = input_loader(cfg, rows)
    images = torch.from_numpy(np.stack([load(r) for _, r in rows.iterrows()])).float()
    layer = target_layer or (None if method == "rollout" else find_target_layer(model, images))

    def explain(net, x):
        return saliency_maps(net, x, method, layer)

    maps = explain(model, images)
    out = {"split": split, "method": method, "n_images": len(rows), "images": rows["image"].astype(str).tolist(),
           "target_layer": check_target_layer(model, layer, images[:1]) if layer else None,
           "faithfulness": faithfulness(model, images, maps, percentiles=PERCENTILES, n_random=ROAD_RANDOM,
                                        seed=seed),
           "randomisation": randomisation_check(explain, model, images, maps)}
    keep, masks = aligned_masks(rows, cfg)
    if len(keep):
        out["localisation"] = {**localisation(maps[keep], masks, n_random=RANDOM_MAPS, seed=seed),
                               "mask": "the row's ROI label"}
    return json_safe(out)


def write_explanation_quality(run: RunFolder, **kwargs) -> dict:
    """Check the run's explanations and write the result into the run (``explain_quality``)."""
    result = explanation_quality(run, **kwargs)
    run.write_json("explain_quality", result)
    return result
