"""Load a trained network back from a run folder."""
from __future__ import annotations

from pathlib import Path

import torch

from medfit.config import ExperimentConfig
from medfit.errors import WeightsError


def num_outputs_of(cfg: ExperimentConfig) -> int:
    """Output width implied by the config's task and classes."""
    d = cfg.data
    if d.task == "binary":
        return 1
    if d.task == "multilabel":
        return len(d.label_columns)
    return len(d.class_names)


def load_trained_model(run_dir: str | Path, cfg: ExperimentConfig, which: str = "best") -> torch.nn.Module:
    """Build the run's network and load ``checkpoints/<which>.ckpt`` into it (eval mode)."""
    from medfit.models.volume_models import build_volume_model

    path = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found; train the run first (medfit train CONFIG)")
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    model = build_volume_model(cfg, num_outputs_of(cfg), load_pretrained=False)  # weights come from the checkpoint
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    model.load_state_dict(weights)
    return model.eval()
