"""Reading checkpoints safely: tensors and plain data only (``weights_only=True``), never pickled code."""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from medfit.errors import WeightsError


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents (tensors, numbers, strings, containers); a damaged or code-carrying file is refused."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found; train the run first (medfit train CONFIG)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a Lightning checkpoint always is one
        raise WeightsError(f"{path}: not a readable checkpoint (not a torch.save archive: truncated, damaged or another "
                           "format); retrain, or resume from another run")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise WeightsError(f"{path}: not a readable checkpoint (its pickled data is damaged); retrain, or resume "
                               "from another run") from None
        raise WeightsError(f"{path}: refused: it holds a pickled object ({found.group(1)}), not only tensors and plain "
                           "data; medfit never runs code from a checkpoint: use a checkpoint medfit wrote") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable checkpoint ({reason}); it is truncated or not a medfit "
                           "checkpoint: retrain, or resume from another run") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a medfit checkpoint (expected a mapping, got {type(data).__name__})")
    return data


def network_state(checkpoint: dict, source: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The network's weights in a Lightning checkpoint: ``state_dict`` entries under ``model.``, prefix removed."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise WeightsError(f"{source}: no state_dict in the checkpoint; is it a medfit run checkpoint?")
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


# What Lightning needs in a checkpoint to resume a fit (anything less is a weights-only file).
RESUME_KEYS = ("state_dict", "epoch", "global_step", "loops", "optimizer_states")


def read_training_checkpoint(path: str | Path) -> dict:
    """A checkpoint a fit can resume from: read safely, holding a fit's whole state (checked before Lightning loads it)."""
    data = read_checkpoint(path)
    missing = [k for k in RESUME_KEYS if k not in data]
    if missing:
        raise WeightsError(f"{path}: not a training checkpoint (no {', '.join(missing)}); it cannot be resumed: start "
                           "a new run without --resume, or under another name")
    return data
