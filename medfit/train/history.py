"""The training history (the run's training log CSV): every logged line kept, the file rewritten atomically after each, and the
lines carried inside every checkpoint, so that a resumed run starts from exactly the lines its checkpoint had seen.

Lightning's CSVLogger deletes its CSV when the folder is not empty (every --resume lost the history), keeps lines
in memory for up to 100 steps (lost on kill -9) and rewrites the file in place when a column appears.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from medfit.run_folder import atomic_write


def read_history(path: Path) -> list[dict[str, Any]]:
    """The lines of a training log CSV (empty cells left out); [] when the file is absent."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the lines atomically in Lightning's CSV layout (sorted columns, empty cells where a line lacks one)."""
    keys = sorted({k for row in rows for k in row})

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, torch.Tensor) else value


class HistoryLogger(Logger):
    """Lightning logger writing every line to ``path`` at once (atomically); ``rows`` is the whole history."""

    def __init__(self, path: str | Path, rows: list[dict[str, Any]] | None = None):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = list(rows or [])

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent.parent)

    @property
    def log_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The config is saved in the run folder; nothing to log here."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.append({**{k: _plain(v) for k, v in metrics.items()}, "step": step if step is not None else len(self.rows)})
        self.save()

    @rank_zero_only
    def save(self) -> None:
        if self.rows:
            write_history(self.path, self.rows)


class HistoryInCheckpoint(Callback):
    """Stores the logger's lines in each checkpoint and restores them on resume (lines logged after the checkpoint
    are about to be logged again by the resumed run)."""

    def __init__(self, logger: HistoryLogger):
        self.logger = logger

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.logger.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.logger.rows = [dict(r) for r in state_dict.get("rows", [])]


def history_through(path: Path, epoch: int) -> list[dict[str, Any]]:
    """The lines of an existing history up to ``epoch`` (for checkpoints written before the lines rode inside them)."""
    return [row for row in read_history(path) if float(row.get("epoch", 0)) <= epoch]
