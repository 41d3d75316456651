"""Reading checkpoints safely: tensors and plain data only (``weights_only=True``), never pickled code."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from medfit.errors import WeightsError


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents (tensors, numbers, strings, containers); a damaged or code-carrying file is refused."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found; train the run first (medfit train CONFIG)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise WeightsError(f"{path}: refused: the file is damaged or holds more than tensors ({reason}); medfit "
                           "never runs code from a checkpoint: use the run's own checkpoint") from None
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
