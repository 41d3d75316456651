"""The run folder: the only code that knows the names of the files a run writes; every write is atomic.

``RunFolder`` (one training, zero-shot, VLM or pretraining run), ``StudyFolder`` (a tuning study) and
``ProtocolFolder`` (k-fold cross-validation) name their files here and nowhere else.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medfit.config import config_from_dict, config_to_dict
from medfit.config.secrets import masked_yaml
from medfit.errors import ConfigError, DataError

# Every file a run folder may hold, by role. Stage extras are JSON or CSV files named here too.
FILES = {
    "config": "config.yaml",
    "manifest": "manifest.csv",
    "predictions": "predictions.csv",
    "metrics": "metrics.json",
    "train_info": "train_info.json",
    "audit": "audit.json",
    "audit_findings": "audit_findings.csv",
    "audit_removed": "audit_removed.csv",
    "skipped": "skipped_rows.csv",  # preprocess.on_bad_file: skip: rows dropped before training, with the reason
    "report": "report.html",
    "model_card": "model_card.md",
    "tripod": "tripod_ai.md",
    "about": "about.yaml",  # the authors' notes for the model card and TRIPOD+AI (intended use, data dates, ...)
    "augmented": "augmented.json",
    "augmented_table": "augmented.md",
    "study_predictions": "study_predictions.csv",
    "multilabel_any": "multilabel_any.json",
    "sites": "sites.json",
    "covariates": "covariates.json",
    "pretrain_metrics": "pretrain_metrics.json",
    "onnx": "model.onnx",
    "onnx_check": "model.json",
    "encoder_weights": "model.safetensors",
    "training_log": "logs/metrics.csv",
    "gallery": "plots/saliency/gallery.json",
    "ood_gate": "ood_gate.npz",  # out-of-distribution gate: class means, shared precision matrix, threshold
    "ood": "ood.json",  # the gate's method, threshold and outside rates per split
    "ood_scores": "ood_scores.csv",  # distance and outside flag of every non-training image
    "review": "review.html",  # the reviewer's page (duplicates, label issues, OOD cases -> corrections CSV)
    "slice_saliency": "plots/saliency_slices/slices.json",
    "explain_quality": "plots/saliency/quality.json",
}
CHECKPOINTS = "checkpoints"
MEMBERS = "members"  # deep-ensemble members beyond the first: members/seed<k>/, each a run folder of its own
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def json_safe(value: Any, digits: int | None = None) -> Any:
    """Plain JSON data: arrays and tuples to lists, numpy scalars to Python, NaN and infinities to None (JSON has
    neither), floats rounded to ``digits`` when given."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v, digits) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return None
        return round(float(value), digits) if digits is not None else float(value)
    return value


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then move it into place (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write text atomically."""
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def write_json(path: Path, data: Any) -> Path:
    """Write JSON-safe data atomically (NaN becomes null)."""
    return write_text(path, json.dumps(json_safe(data), indent=2))


def write_csv(path: Path, table: pd.DataFrame) -> Path:
    """Write a table as CSV atomically."""
    return atomic_write(Path(path), lambda tmp: table.to_csv(tmp, index=False))


def check_run_name(name: str) -> str:
    """A run name is a plain folder name (letters, digits, ., _, -): it can never leave output_dir."""
    if not RUN_NAME.match(str(name)) or name in (".", ".."):
        raise ConfigError(f"name {name!r}: a run name is a plain folder name (letters, digits, '.', '_', '-'), "
                          "not a path; set output_dir for where runs go")
    return str(name)


class Folder:
    """Shared reading and writing of named files inside one folder."""

    files: dict[str, str] = {}

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def file(self, role: str) -> Path:
        """The path of a file by its role (KeyError for a role the folder does not have)."""
        return self.path / self.files[role]

    def has(self, role: str) -> bool:
        """Whether the file of ``role`` exists."""
        return self.file(role).is_file()

    def read_json(self, role: str) -> Any:
        """A JSON file by role; DataError naming it when missing or damaged."""
        path = self.file(role)
        if not path.is_file():
            raise DataError(f"{path}: not found; is {self.path} a finished medfit run folder?")
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); rerun the step that writes it") from None

    def read_json_or(self, role: str, default: Any = None) -> Any:
        """A JSON file by role, or ``default`` when it does not exist."""
        return self.read_json(role) if self.has(role) else default

    def write_json(self, role: str, data: Any) -> Path:
        """Write a JSON file by role, atomically."""
        return write_json(self.file(role), data)

    def read_csv(self, role: str, **kwargs) -> pd.DataFrame:
        """A CSV file by role; DataError naming it when missing."""
        path = self.file(role)
        if not path.is_file():
            raise DataError(f"{path}: not found; is {self.path} a finished medfit run folder?")
        return pd.read_csv(path, **kwargs)

    def write_csv(self, role: str, table: pd.DataFrame) -> Path:
        """Write a CSV file by role, atomically."""
        return write_csv(self.file(role), table)

    def write_text(self, role: str, text: str) -> Path:
        """Write a text file by role, atomically."""
        return write_text(self.file(role), text)


class RunFolder(Folder):
    """One run: ``<output_dir>/<name>/`` with its config, manifest, checkpoints, predictions, metrics and report."""

    files = FILES

    @classmethod
    def of(cls, output_dir: str | Path, name: str) -> "RunFolder":
        """The run folder ``<output_dir>/<name>`` (the name checked to be a plain folder name)."""
        return cls(Path(output_dir) / check_run_name(name))

    # config -------------------------------------------------------------------------------------------------
    def read_config(self):
        """The resolved config saved in the run."""
        path = self.file("config")
        if not path.is_file():
            raise DataError(f"{path}: not found; is {self.path} a medfit run folder?")
        try:
            # libyaml's safe loader when present: a resolved config is ~500 lines, ~0.45 s in pure-Python PyYAML
            return config_from_dict(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def write_config(self, cfg) -> Path:
        """Write the resolved config as YAML, passwords in URLs masked (medfit.config.secrets)."""
        return self.write_text("config", masked_yaml(config_to_dict(cfg)))

    # tables ---------------------------------------------------------------------------------------------------
    def read_manifest(self) -> pd.DataFrame:
        """The manifest the run trained on (slice_index kept as written)."""
        return self.read_csv("manifest")

    def read_predictions(self, name: str = "") -> pd.DataFrame:
        """``predictions.csv``, or the predictions written by ``medfit predict`` under ``name``."""
        path = self.predictions_path(name)
        if not path.is_file():
            raise DataError(f"{path}: not found; train or predict first")
        return pd.read_csv(path)

    def predictions_path(self, name: str = "") -> Path:
        """Where the predictions of the run (or of a later ``medfit predict`` named ``name``) are."""
        return self.file("predictions") if not name else self.path / f"predictions_{name}.csv"

    def write_predictions(self, table: pd.DataFrame, name: str = "") -> Path:
        """Write predictions atomically."""
        return write_csv(self.predictions_path(name), table)

    def read_metrics(self) -> dict:
        """``metrics.json``."""
        return self.read_json("metrics")

    # checkpoints ----------------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        """The checkpoint folder."""
        return self.path / CHECKPOINTS

    def checkpoint(self, which: str = "best") -> Path:
        """``checkpoints/<which>.ckpt`` (best or last)."""
        return self.checkpoints / f"{which}.ckpt"

    def adapter(self, which: str = "best") -> Path:
        """``checkpoints/<which>/``: a saved adapter folder (VLM LoRA runs)."""
        return self.checkpoints / which

    def member(self, seed: int) -> "RunFolder":
        """The folder of the ensemble member trained with ``seed`` (``members/seed<k>/``: its config, checkpoints and
        training record); the first member is the run itself."""
        return RunFolder(self.path / MEMBERS / f"seed{int(seed)}")

    @property
    def has_checkpoint(self) -> bool:
        """Whether the run holds a last checkpoint (it trained at least one epoch)."""
        return self.checkpoint("last").is_file()

    # folders ----------------------------------------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def saliency(self) -> Path:
        """Where the TP/FP/TN/FN saliency gallery goes."""
        return self.plots / "saliency"

    @property
    def study_saliency(self) -> Path:
        """Where key-slice saliency overlays of study runs go."""
        return self.plots / "saliency_studies"

    @property
    def explain(self) -> Path:
        """Default folder of ``medfit explain`` overlays."""
        return self.path / "explain"

    def check_start(self, resume: bool) -> None:
        """Before anything is written: a finished run is never overwritten, and --resume needs a checkpoint."""
        last = self.checkpoint("last")
        if not resume and last.exists():
            raise DataError(f"{self.path}: holds a previous run; pass --resume to continue it, or choose another name")
        if resume and not last.exists():
            raise DataError(f"{last}: no checkpoint to resume from; run without --resume to start")

    @property
    def is_run(self) -> bool:
        """Whether this folder holds a run's config."""
        return self.has("config")

    def require(self, *roles: str) -> None:
        """DataError naming the first missing file (e.g. before evaluating or reporting)."""
        for role in roles:
            if not self.has(role):
                raise DataError(f"{self.file(role)}: not found; is {self.path} a finished medfit run folder?")


class StudyFolder(Folder):
    """A tuning study: ``<output_dir>/tune/<study>/`` with its storage, trial runs, best config and report."""

    files = {"storage": "study.db", "best_config": "best_config.yaml", "summary": "summary.json",
             "seeds": "seeds.csv", "report": "report.html", "audit": FILES["audit"],
             "audit_findings": FILES["audit_findings"], "audit_removed": FILES["audit_removed"]}

    @property
    def trials(self) -> Path:
        """Where each trial's run folder goes."""
        return self.path / "trials"

    @property
    def plots(self) -> Path:
        return self.path / "plots"


class ProtocolFolder(Folder):
    """A k-fold cross-validation: ``<output_dir>/<name>-cv/`` with one run folder per fold and the pooled results."""

    files = {"result": "cv.json", "table": "cv.csv", "oof_predictions": "oof_predictions.csv",
             "label_issues": "label_issues.csv", "report": FILES["report"], "review": FILES["review"],
             "learning_curve": "learning_curve.json", "learning_curve_table": "learning_curve.csv",
             "learning_curve_report": "learning_curve.html"}

    def fold_input(self, name: str) -> Path:
        """The manifest CSV a fold's run trains on."""
        return self.path / f"{name}.input.csv"
