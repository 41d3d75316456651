"""Checks before a classifier trains: the monitored metric's direction, a validation split its AUC can score, and
fine-tuning methods that assume pretrained weights."""
from __future__ import annotations

import logging

from medfit.config import ExperimentConfig
from medfit.data.manifest import Manifest
from medfit.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# What the LightningModule logs on validation, and which direction is better (Lightning's ``mode``).
MONITOR_MODES = {"val_auc": "max", "val_loss": "min"}


def monitor_mode(monitor: str) -> str:
    """'max' for the validation AUC, 'min' for the validation loss: what checkpoints and early stopping follow."""
    if monitor not in MONITOR_MODES:
        raise ConfigError(f"train.monitor {monitor!r}: medfit logs {' and '.join(MONITOR_MODES)} on validation; "
                          f"monitor one of them")
    return MONITOR_MODES[monitor]


def check_validation_split(manifest: Manifest, monitor: str, where: str) -> None:
    """Refuse a validation split whose AUC is undefined (one class) when the AUC chooses the checkpoint."""
    val = manifest.split("val")
    if monitor != "val_auc" or manifest.target.auc_defined(val.labels()):
        return
    counts = val.counts().to_dict("records")
    raise DataError(f"{where}: the validation split has one class only, or lacks a class "
                    f"({counts[0] if counts else 'no rows'}), so its AUC is undefined and train.monitor val_auc cannot choose a checkpoint; give val both classes "
                    f"(data.val_fraction, or a val folder with every class) or set train.monitor: val_loss")


def weights_warnings(cfg: ExperimentConfig, pretrained: dict | None) -> list[str]:
    """The warnings about the starting weights for the run's record: fine-tuning that assumes pretrained weights on a
    random network, and weights that do not say how their inputs were normalised (logged where they were found)."""
    norm = (pretrained or {}).get("input_normalisation") or {}
    return random_init_warnings(cfg, pretrained) + ([norm["warning"]] if norm.get("warning") else [])


def random_init_warnings(cfg: ExperimentConfig, pretrained: dict | None) -> list[str]:
    """A warning per fine-tuning method that assumes pretrained weights but gets a randomly initialised network."""
    m = cfg.model
    if m.kind != "timm" or m.finetune == "full" or pretrained is not None:
        return []
    what = "trains only the head on frozen random features" if m.finetune == "linear" \
        else "adapts frozen random weights with low-rank updates"
    line = (f"model.finetune: {m.finetune} on random weights (model.pretrained is empty): it {what}; set "
            f"model.pretrained (e.g. timm:NAME, a weight folder or a medfit run) or model.finetune: full")
    log.warning(line)
    return [line]
