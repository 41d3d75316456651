"""Explain images of a trained run: saliency overlays for given images, and a TP/FP/TN/FN gallery for the report."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medfit.errors import DataError
from medfit.explain.overlay import probability_caption, write_overlay


def _load_images(refs: list[str], cfg) -> torch.Tensor:
    from medfit.preprocess import cached_preprocess, load_prepared

    pre = cached_preprocess(cfg)
    arrays = []
    for ref in refs:
        if "::" not in ref and not Path(ref).exists():
            raise DataError(f"{ref}: image not found; pass image files or <file.npz>::<key>::<index> references")
        arrays.append(load_prepared(ref, pre, cfg.data.image_size, cfg.data.channels))
    return torch.from_numpy(np.stack(arrays)).float()


def saliency_maps(model: torch.nn.Module, images: torch.Tensor, method: str = "gradcam", target_layer: str | None = None,
                  class_index: int | None = None) -> np.ndarray:
    """Maps (B, H, W) in [0, 1]: Grad-CAM family, or attention rollout for ViTs (``method='rollout'``)."""
    if method == "rollout":
        from medfit.explain.rollout import attention_rollout

        return attention_rollout(model, images)
    from medfit.explain.cam import compute_cam

    return compute_cam(model, images, method, target_layer, class_index)


def _safe_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(ref.split("::")[0]).stem + ("_" + "_".join(ref.split("::")[1:]) if "::" in ref else ""))[-80:]


def explain_images(run_dir: str | Path, refs: list[str], method: str = "gradcam", target_layer: str | None = None,
                   out_dir: str | Path | None = None, labels: list | None = None, class_index: int | None = None,
                   batch_size: int = 16) -> list[dict]:
    """Overlays for ``refs`` with a run's best checkpoint; returns one record per image (ref, prob, png)."""
    from medfit.evaluate.run import load_run_config
    from medfit.train.checkpoint import load_trained_model
    from medfit.train.module import probabilities

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    model = load_trained_model(run_dir, cfg)
    out_dir = Path(out_dir) if out_dir else run_dir / "explain"
    names = list(cfg.data.class_names) or ["0", "1"]
    records = []
    for start in range(0, len(refs), batch_size):
        chunk = refs[start:start + batch_size]
        images = _load_images(chunk, cfg)
        with torch.no_grad():
            probs = probabilities(model(images), cfg.data.task).numpy()
        maps = saliency_maps(model, images, method, target_layer, class_index)
        for i, ref in enumerate(chunk):
            if probs.shape[1] == 1:
                prob, cls = float(probs[i, 0]), names[-1]
            else:
                k = class_index if class_index is not None else int(probs[i].argmax())
                prob, cls = float(probs[i, k]), names[k] if k < len(names) else str(k)
            label = labels[start + i] if labels is not None else None
            png = write_overlay(out_dir / f"{start + i:03d}_{_safe_name(ref)}_{method}.png", images[i].numpy(), maps[i],
                                probability_caption(prob, cls, label))
            records.append({"image": ref, "prob": prob, "class": cls, "png": str(png), "method": method})
    return records


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


def write_saliency_gallery(run_dir: str | Path, split: str = "test", per_group: int = 2, method: str = "gradcam",
                           target_layer: str | None = None) -> Path:
    """Overlays of TP/FP/TN/FN cases of a binary run into ``plots/saliency/`` and their index ``gallery.json``."""
    from medfit.evaluate.run import load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.data.task != "binary":
        raise DataError(f"{run_dir}: the TP/FP/TN/FN gallery is for binary runs; use `medfit explain` on chosen images")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    pred = pd.read_csv(run_dir / "predictions.csv")
    if split not in set(pred["split"]):
        split = "val"
    pred = pred[pred["split"] == split]
    label = cfg.data.label_columns[0]
    threshold = float(metrics["threshold"]["value"])
    groups = case_groups(pred, label, threshold, per_group)
    out_dir = run_dir / "plots" / "saliency"
    entries = []
    names = list(cfg.data.class_names) or ["0", "1"]
    for group, part in groups.items():
        if part.empty:
            continue
        recs = explain_images(run_dir, part["image"].tolist(), method, target_layer, out_dir / group,
                              labels=[names[int(v)] for v in part[label]])
        entries += [{**r, "group": group, "png": str(Path(r["png"]).relative_to(run_dir))} for r in recs]
    index = {"split": split, "threshold": threshold, "method": method, "cases": entries}
    path = out_dir / "gallery.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(index, indent=2))
    return path
