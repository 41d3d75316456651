"""Pre-flight: what a run needs that can be checked in seconds, checked before the audit and before any file is written.

Config values in range, the run folder (inside output_dir, not a finished run, a readable checkpoint to resume from),
the manifest and the labels of each split, the network (built on the meta device: no memory, no weights) and every
weight source. Every problem found is reported at once.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from medfit.audit import split_grouper
from medfit.config import ExperimentConfig
from medfit.config.ranges import TRAINING, range_problems
from medfit.data.manifest import Manifest, build_manifest
from medfit.errors import ConfigError, DataError, MedfitError
from medfit.models import build_network
from medfit.models.checkpoint import read_checkpoint, read_training_checkpoint
from medfit.models.weights import resolve_weights
from medfit.run_folder import RunFolder
from medfit.task import Task

log = logging.getLogger("medfit")

class PreflightError(MedfitError):
    """Several problems found before a run started; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"{len(problems)} problems found before anything ran (nothing was written):\n"
                         + "\n".join(f"  - {p}" for p in problems))


def raise_all(problems: list[MedfitError]) -> None:
    """One problem raises as itself; several as one PreflightError listing them all."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise PreflightError([str(p) for p in problems])


def _attempt(problems: list[MedfitError], check, *args):
    """Run one check; a MedfitError it raises is kept as a problem (None returned)."""
    try:
        return check(*args)
    except MedfitError as exc:
        problems.append(exc)
        return None


def output_problems(output_dir: str | Path) -> list[str]:
    """output_dir must be a folder, or creatable in a writable one."""
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        return [f"output_dir {out}: is a file, not a folder; set output_dir to a folder"]
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"output_dir {out}: cannot write in {existing}; set output_dir to a writable folder"]
    return []


def run_folder_problems(cfg: ExperimentConfig, resume: bool) -> list[MedfitError]:
    """The run folder lies inside output_dir, is not a finished run (or is one to resume, with a readable checkpoint)."""
    problems = [ConfigError(p) for p in output_problems(cfg.output_dir)]
    run = _attempt(problems, RunFolder.of, cfg.output_dir, cfg.name)
    if run is None:
        return problems
    outside = run.path.resolve().parent != Path(cfg.output_dir).expanduser().resolve()
    if outside:
        problems.append(ConfigError(f"name {cfg.name!r}: {run.path} leads to {run.path.resolve()}, outside output_dir; "
                                    "remove that link or choose another name"))
    _attempt(problems, run.check_start, resume)
    if resume and run.checkpoint("last").is_file():
        _attempt(problems, read_training_checkpoint, run.checkpoint("last"))
    return problems


def _names(task: Task, classes) -> str:
    names = task.class_names or tuple(str(i) for i in range(max(classes, default=0) + 1))
    return ", ".join(repr(names[int(c)]) if int(c) < len(names) else repr(int(c)) for c in sorted(classes))


def split_label_problems(manifest: Manifest, needs: tuple[str, ...], root: str = "") -> tuple[list[str], list[str]]:
    """(problems, warnings) about the labels of each split: training needs every class (every label both ways),
    a monitored val split at least two classes; any other split with one class cannot give an AUC."""
    task, where = manifest.target, f"{root}: " if root else ""
    problems, warnings = [], []
    for split in [*needs, *sorted(set(manifest.df["split"]) - set(needs))]:
        part = manifest.split(split)
        if split in needs and not len(part):
            problems.append(f"{where}no {split!r} rows in the manifest; this run needs {' and '.join(needs)} images")
            continue
        if task.is_multilabel:
            y = task.labels(part.df)
            one_way = [c for c, col in zip(task.label_columns, y.T) if len(np.unique(col)) < 2]
            line = (f"{where}in the {split!r} split the label(s) {', '.join(map(repr, one_way))} never change "
                    f"({len(part)} rows)")
            if one_way and split == "train":
                problems.append(f"{line}: the model cannot learn them; add rows where they differ")
            elif one_way:
                warnings.append(f"{line}: their AUC is undefined there and reported as null")
            continue
        present = set(np.unique(task.labels(part.df)).tolist())
        absent = set(range(len(task.class_names))) - present
        if split == "train" and absent:
            problems.append(f"{where}the 'train' split has no images of class {_names(task, absent)} (it holds "
                            f"{_names(task, present)}, {len(part)} images): the model cannot learn a class it never "
                            "sees; add training images of it, or check the labels and data.class_names")
        elif split in needs and len(present) < 2:
            problems.append(f"{where}the {split!r} split holds only class {_names(task, present)} ({len(part)} images): "
                            "the validation AUC that picks the best epoch and the threshold need two classes; add "
                            f"images of {_names(task, absent)} to {split!r}, or let medfit draw it (data.val_fraction)")
        elif len(present) < 2:
            warnings.append(f"{where}the {split!r} split holds only class {_names(task, present)} ({len(part)} images): "
                            "its AUC and AUC CI are undefined and reported as null; add images of "
                            f"{_names(task, absent)} to measure discrimination there")
        elif absent and split in needs:
            warnings.append(f"{where}the {split!r} split has no images of class {_names(task, absent)}")
    return problems, warnings


def build_skeleton(cfg: ExperimentConfig, outputs: int) -> None:
    """Build the network without weights on the meta device (no memory, no compute); the CPU when meta cannot."""
    try:
        with torch.device("meta"):
            build_network(cfg, outputs, load_pretrained=False)
        return
    except Exception:  # noqa: BLE001  (some builders cannot run on the meta device: the CPU build says what is wrong)
        pass
    try:
        build_network(cfg, outputs, load_pretrained=False)
    except MedfitError:
        raise
    except Exception as exc:  # noqa: BLE001  (any library error while building is one line about the model)
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ConfigError(f"model.name {cfg.model.name!r} (model.kind {cfg.model.kind!r}): cannot be built "
                          f"({type(exc).__name__}: {first}); check the model keys") from None


def weight_sources(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(config key, source) of every pretrained-weight source the model reads."""
    m = cfg.model
    out = [("model.pretrained", m.pretrained)] if m.kind == "timm" and m.pretrained else []
    if m.kind == "fusion":
        out += [(f"model.fusion.members[{i}].pretrained", p.pretrained) for i, p in enumerate(m.fusion.members)
                if p.pretrained]
        out += [(f"model.fusion.members[{i}].run", p.run) for i, p in enumerate(m.fusion.members) if p.run]
    return out


def _check_source(key: str, source: str) -> None:
    resolved = resolve_weights(source, key=key)
    if resolved.kind == "run":  # a run's checkpoint is read as tensors only: a pickled payload is refused here
        read_checkpoint(resolved.path)


def model_problems(cfg: ExperimentConfig, outputs: int) -> list[MedfitError]:
    """The network can be built and every weight source resolves (VLM runs check their model in `medfit vlm`)."""
    if cfg.model.kind == "vlm":
        return []
    problems: list[MedfitError] = []
    _attempt(problems, build_skeleton, cfg, outputs)
    for key, source in weight_sources(cfg):
        _attempt(problems, _check_source, key, source)
    return problems


def preflight(cfg: ExperimentConfig, data_dir: str | None = None, resume: bool = False,
              needs: tuple[str, ...] = ("train", "val"), run_folder: bool = True,
              sections: tuple[str, ...] = TRAINING) -> Manifest | None:
    """Check everything a run needs before the audit and before any file is written; return the manifest.

    ``run_folder``: the config names one run folder (train, zero-shot, VLM); k-fold and tuning write elsewhere.
    Raises the one problem found, or a PreflightError listing all of them; warnings go to the log.
    """
    problems: list[MedfitError] = [ConfigError(p) for p in range_problems(cfg, sections)]
    problems += run_folder_problems(cfg, resume) if run_folder else [ConfigError(p) for p in output_problems(cfg.output_dir)]
    manifest = _attempt(problems, build_manifest, cfg, data_dir, split_grouper(cfg))  # val drawn around duplicates
    if manifest is not None:
        bad, warnings = split_label_problems(manifest, needs, cfg.data.root)
        problems += [DataError(p) for p in bad]
        for line in warnings:
            log.warning("warning: %s", line)
    outputs = manifest.target.num_outputs if manifest is not None else Task.of(cfg.data).num_outputs
    problems += model_problems(cfg, max(1, outputs))
    raise_all(problems)
    return manifest
