"""Explain cases of a trained run: saliency overlays for given images or manifest rows, the TP/FP/TN/FN gallery
for the report, and key-slice overlays of study runs. Inputs are prepared exactly as in training."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medfit.data.covariates import covariate_columns, encode_covariates
from medfit.data.rows import row_keys
from medfit.errors import DataError
from medfit.explain.cam import compute_cam
from medfit.explain.overlay import probability_caption, write_overlay
from medfit.explain.rollout import attention_rollout
from medfit.models import load_network
from medfit.models.covariates import BoundCovariates
from medfit.models.registry import run_covariates
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder
from medfit.task import Task


def saliency_maps(model: torch.nn.Module, images: torch.Tensor, method: str = "gradcam", target_layer: str | None = None,
                  class_index: int | None = None) -> np.ndarray:
    """Maps (B, H, W) in [0, 1]: Grad-CAM family, or attention rollout for ViTs (``method='rollout'``)."""
    if method == "rollout":
        return attention_rollout(model, images)
    return compute_cam(model, images, method, target_layer, class_index)


def model_for_rows(model: torch.nn.Module, run: RunFolder, rows: pd.DataFrame) -> torch.nn.Module:
    """The network as a function of the images of ``rows``: a covariate run gets those rows' covariates bound."""
    encoder = run_covariates(run)
    if not encoder:
        return model
    where = "the rows to explain (this run uses clinical covariates: explain its manifest rows, e.g. --gallery)"
    return BoundCovariates(model, torch.from_numpy(encode_covariates(rows, encoder, where))).eval()


def _safe_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(ref.split("::")[0]).stem + ("_" + "_".join(ref.split("::")[1:]) if "::" in ref else ""))[-80:]


def rows_of(refs: list[str]) -> pd.DataFrame:
    """Manifest-like rows for bare image references (files or npz entries), each checked to exist."""
    for ref in refs:
        if "::" not in ref and not Path(ref).exists():
            raise DataError(f"{ref}: image not found; pass image files or <file.npz>::<key>::<index> references")
    return pd.DataFrame({"image": [str(r) for r in refs]})


def explain_rows(run: RunFolder, rows: pd.DataFrame, method: str = "gradcam", target_layer: str | None = None,
                 out_dir: str | Path | None = None, labels: list | None = None, class_index: int | None = None,
                 batch_size: int = 16, model: torch.nn.Module | None = None) -> list[dict]:
    """Overlays for manifest rows (slice, mask and ROI columns honoured) with the run's best checkpoint (or ``model``,
    the run's network already loaded); one record per row (image, prob, class, png)."""
    cfg = run.read_config()
    task = Task.of(cfg.data)
    model = model if model is not None else load_network(run)
    load, _ = input_loader(cfg, rows)
    out_dir = Path(out_dir) if out_dir else run.explain
    names = list(task.class_names) or ["0", "1"]
    records = []
    rows = rows.reset_index(drop=True)
    for start in range(0, len(rows), batch_size):
        chunk = rows.iloc[start:start + batch_size]
        images = torch.from_numpy(np.stack([load(r) for _, r in chunk.iterrows()])).float()
        net = model_for_rows(model, run, chunk)
        with torch.no_grad():
            probs = task.probabilities(net(images)).numpy()
        maps = saliency_maps(net, images, method, target_layer, class_index)
        for i, (_, row) in enumerate(chunk.iterrows()):
            k = 0 if probs.shape[1] == 1 else (class_index if class_index is not None else int(probs[i].argmax()))
            cls = names[-1] if probs.shape[1] == 1 else (names[k] if k < len(names) else str(k))
            prob, label = float(probs[i, k]), labels[start + i] if labels is not None else None
            name = _safe_name(str(row["image"])) + (f"_s{int(row['slice_index'])}" if pd.notna(row.get("slice_index")) else "")
            png = write_overlay(out_dir / f"{start + i:03d}_{name}_{method}.png", images[i].numpy(), maps[i],
                                probability_caption(prob, cls, label))
            where = {c: row[c] for c in ("study_id", "slice_index", "offset") if c in row and pd.notna(row[c])}
            records.append({"image": str(row["image"]), **where, "prob": prob, "class": cls, "png": str(png),
                            "method": method})
    return records


def explain_images(run: RunFolder, refs: list[str], method: str = "gradcam", target_layer: str | None = None,
                   out_dir: str | Path | None = None, labels: list | None = None, class_index: int | None = None,
                   batch_size: int = 16) -> list[dict]:
    """Overlays for image references with a run's best checkpoint; returns one record per image."""
    return explain_rows(run, rows_of(refs), method, target_layer, out_dir, labels, class_index, batch_size)


def case_groups(pred: pd.DataFrame, label: str, threshold: float, per_group: int = 2) -> dict[str, pd.DataFrame]:
    """The most confident true/false positives/negatives at the carried threshold."""
    y, called = pred[label].astype(int), pred["prob"] >= threshold
    groups = {"TP": pred[(y == 1) & called], "FP": pred[(y == 0) & called],
              "TN": pred[(y == 0) & ~called], "FN": pred[(y == 1) & ~called]}
    out = {}
    for name, part in groups.items():
        # most confident first: highest probability among positive calls, lowest among negative calls
        order = part["prob"].sort_values(ascending=name in ("TN", "FN"))
        out[name] = part.loc[order.index[:per_group]]
    return out


def _with_row_inputs(run: RunFolder, pred: pd.DataFrame) -> pd.DataFrame:
    """Prediction rows with the manifest's study columns (mask, ROI label), matched row by row (``row_keys``)."""
    manifest = run.read_manifest()
    wanted = ["mask", "roi_label", *covariate_columns(run.read_config().covariates)]
    extra = [c for c in wanted if c in manifest and c not in pred]
    if not extra:
        return pred
    keys = row_keys(pred, manifest)
    return pred.merge(manifest[keys + extra].drop_duplicates(keys), on=keys, how="left")


def write_saliency_gallery(run: RunFolder, split: str = "test", per_group: int = 2, method: str = "gradcam",
                           target_layer: str | None = None) -> Path:
    """Overlays of TP/FP/TN/FN cases of a binary run and their index (for the report)."""
    cfg = run.read_config()
    if cfg.data.task != "binary":
        raise DataError(f"{run.path}: the TP/FP/TN/FN gallery is for binary runs; use `medfit explain` on chosen images")
    threshold = float(run.read_metrics()["threshold"]["value"])
    pred = run.read_predictions()
    split = split if split in set(pred["split"]) else "val"
    pred = _with_row_inputs(run, pred[pred["split"] == split])
    label, names = cfg.data.label_columns[0], list(cfg.data.class_names) or ["0", "1"]
    entries = []
    model = load_network(run)
    for group, part in case_groups(pred, label, threshold, per_group).items():
        if part.empty:
            continue
        recs = explain_rows(run, part, method, target_layer, run.saliency / group,
                            labels=[names[int(v)] for v in part[label]], model=model)
        entries += [{**r, "group": group, "png": str(Path(r["png"]).relative_to(run.path))} for r in recs]
    return run.write_json("gallery", {"split": split, "threshold": threshold, "method": method, "cases": entries})


def is_study_run(run: RunFolder) -> bool:
    """A slice-mode run of study rows (volumes with key slices), whose key slices key_slice_saliency can show."""
    pred = run.read_predictions()
    return run.read_config().volume.mode == "slice" and "slice_index" in pred and pred["slice_index"].notna().any()


def key_slice_saliency(run: RunFolder, split: str = "test", cases: int = 4, method: str = "gradcam",
                       target_layer: str | None = None) -> list[Path]:
    """Saliency overlays of the key slices (offset 0, prepared exactly as in training) of a slice-mode study run
    (``split``, else val); ``medfit explain RUN --gallery`` writes them for such runs."""
    cfg = run.read_config()
    if cfg.volume.mode != "slice":
        raise DataError(f"{run.path}: key-slice saliency is for slice-mode runs (volume.mode is {cfg.volume.mode!r})")
    manifest, pred = run.read_manifest(), run.read_predictions()
    keys = row_keys(manifest, pred)
    rows = manifest.merge(pred[keys + ["prob"]], on=keys)
    split = split if split in set(rows["split"]) else "val"
    rows = rows[(rows["split"] == split) & ((rows["offset"] == 0) if "offset" in rows else True)].head(cases)
    if rows.empty:
        return []
    model = load_network(run)
    load, _ = input_loader(cfg, rows)
    images = torch.from_numpy(np.stack([load(r) for _, r in rows.iterrows()])).float()
    maps = saliency_maps(model_for_rows(model, run, rows), images, method, target_layer)
    names, label = list(cfg.data.class_names), cfg.data.label_columns[0]
    paths = []
    for i, (_, r) in enumerate(rows.iterrows()):
        caption = probability_caption(float(r["prob"]), names[-1], names[int(r[label])])
        study = r["study_id"] if pd.notna(r.get("study_id")) else f"{_safe_name(str(r['image']))}_s{int(r['slice_index'])}"
        name = Path(str(study)).name.replace("#", "_vb")
        paths.append(write_overlay(run.study_saliency / f"{i:02d}_{name}_{method}.png", images[i].numpy(), maps[i],
                                   caption))
    return paths
