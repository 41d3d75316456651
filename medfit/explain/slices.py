"""Saliency of slice-set runs (``volume.mode: slice_set``): a Grad-CAM family map on every sampled slice of a study
for one output (e.g. the "any" label), tiled into one PNG per study with each slice's index and, for the attention
MIL, its attention weight."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medfit.errors import ConfigError, DataError
from medfit.explain.cam import compute_cam
from medfit.explain.gallery import model_for_rows
from medfit.explain.overlay import overlay_image, write_png
from medfit.models import load_network
from medfit.models.volume_models import GatedAttentionMIL
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder
from medfit.task import Task


def output_index(task: Task, output: str | None) -> int:
    """The model output to explain: ``output`` by name, else "any" when the task has it, else the last output."""
    names = list(task.output_names)
    if output is None:
        return names.index("any") if "any" in names else len(names) - 1
    if output not in names:
        raise ConfigError(f"--output {output!r}: the run's outputs are {', '.join(names)}")
    return names.index(output)


def tile(images: np.ndarray, maps: np.ndarray, captions: list[str], columns: int = 6, size: int = 128) -> np.ndarray:
    """(rows * size, columns * size, 3) uint8: each slice's overlay, captioned, in slice order."""
    tiles = [overlay_image(img, cam, cap, size) for img, cam, cap in zip(images, maps, captions)]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    return np.concatenate([np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)])


class OneStudy(torch.nn.Module):
    """A slice-set network called on one study's slices (S, C, H, W): the saliency tools see a batch of S images
    (one map per slice) and the network sees one study."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        return self.model(slices[None])


def _mil(model: torch.nn.Module) -> GatedAttentionMIL | None:
    return next((m for m in model.modules() if isinstance(m, GatedAttentionMIL)), None)


def slice_saliency(run: RunFolder, split: str = "test", studies: int = 2, output: str | None = None,
                   method: str = "gradcam") -> list[dict]:
    """Tiled per-slice maps of the ``studies`` studies of ``split`` with the highest probability of ``output``; one
    record per study (image, output, prob, slice attention for the MIL, png relative to the run)."""
    cfg = run.read_config()
    if cfg.volume.mode != "slice_set":
        raise DataError(f"{run.path}: per-slice saliency is for slice_set runs (volume.mode is {cfg.volume.mode!r})")
    if method == "rollout":
        raise ConfigError("--slices: attention rollout maps one image at a time; use a Grad-CAM method")
    task = Task.of(cfg.data)
    k = output_index(task, output)
    column = task.probability_columns[k]
    pred = run.read_predictions()
    pred = pred[pred["split"] == split].sort_values(column, ascending=False).head(studies)
    manifest = run.read_manifest()
    rows = pred[["image", "split", column]].merge(manifest, on=["image", "split"], how="left")
    model = load_network(run)
    load, _ = input_loader(cfg, rows)
    records = []
    for i, (_, row) in enumerate(rows.iterrows()):
        x = torch.from_numpy(load(row)).float()[None]  # (1, S, C, H, W)
        net = model_for_rows(model, run, rows.iloc[[i]])
        with torch.no_grad():
            prob = float(task.probabilities(net(x))[0, k])
        maps = compute_cam(OneStudy(net), x[0], method, class_index=k)  # a map per slice, from the shared encoder
        mil = _mil(model)
        attention = mil.last_attention[0].tolist() if mil is not None else None
        captions = [f"#{j}" + (f" a={attention[j]:.2f}" if attention else "") for j in range(len(maps))]
        png = run.plots / "saliency_slices" / f"{i:02d}_{Path(str(row['image'])).name}_{method}.png"
        write_png(png, tile(x[0].numpy(), maps, captions))
        records.append({"image": str(row["image"]), "output": task.output_names[k], "prob": prob,
                        "slices": len(maps), "attention": attention, "png": str(png.relative_to(run.path))})
    run.write_json("slice_saliency", {"split": split, "method": method, "studies": records})
    return records

