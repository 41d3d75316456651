"""The manifest: one row per image (or study) with its labels, patient, site and split."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medfit.config import DataConfig, ExperimentConfig
from medfit.data.corrections import apply_corrections, read_corrections
from medfit.data.splits import assign_validation_split, limit_per_split
from medfit.errors import DataError
from medfit.io.medmnist import npz_keys, read_npz_labels
from medfit.task import Task

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".gz"}
BASE_COLUMNS = ["image", "patient_id", "site", "split"]
SPLITS = ("train", "val", "test", "external")
# split folder names recognised (case-insensitively) when data.split_folders does not name them
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test", "external": "external"}
HIDDEN = {"__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini"}  # besides every name starting with a dot

log = logging.getLogger(__name__)


@dataclass
class Manifest:
    """A table of images with label column(s), patient ids, sites and splits (image and mask paths absolute)."""

    df: pd.DataFrame
    label_columns: list[str] = field(default_factory=lambda: ["label"])
    class_names: list[str] = field(default_factory=list)
    task: str = "binary"

    def __len__(self) -> int:
        return len(self.df)

    @property
    def target(self) -> Task:
        """What is predicted from these rows (kind, classes, label columns)."""
        return Task.of(self)

    @property
    def num_outputs(self) -> int:
        """Width of the model's output: 1 for binary, classes for multiclass, labels for multilabel."""
        return self.target.num_outputs

    def with_df(self, df: pd.DataFrame) -> "Manifest":
        """The same labels and classes over other rows (index reset)."""
        return Manifest(df.reset_index(drop=True), list(self.label_columns), list(self.class_names), self.task)

    def split(self, name: str) -> "Manifest":
        """The rows of one split."""
        return self.with_df(self.df[self.df["split"] == name])

    def labels(self) -> np.ndarray:
        """Labels as an array: (N,) ints for binary/multiclass, (N, L) for multilabel."""
        return self.target.labels(self.df)

    def counts(self) -> pd.DataFrame:
        """Images per split and class (for summaries and reports)."""
        if self.target.is_multilabel:
            return self.df.groupby("split")[self.label_columns].sum()
        col = self.label_columns[0]
        table = self.df.groupby(["split", col]).size().unstack(fill_value=0)
        if self.class_names:
            table.columns = [self.class_names[int(c)] for c in table.columns]
        return table

def _label_index(values: pd.Series, class_names: list[str], source: str) -> tuple[pd.Series, list[str]]:
    """Map label values (names or integers) to 0..K-1 indices; unknown labels are an error."""
    if values.isna().any():
        rows = list(values[values.isna()].index[:5])
        raise DataError(f"{source}: missing labels in rows {rows}; fill them or drop those rows")
    if not class_names:
        uniq = sorted(values.unique(), key=lambda v: (str(type(v)), v))
        class_names = [str(v) for v in uniq]
    names = [str(c) for c in class_names]
    as_str = values.astype(str)
    if set(as_str) <= set(names):
        return as_str.map({n: i for i, n in enumerate(names)}).astype(int), names
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and numeric.between(0, len(names) - 1).all() and (numeric % 1 == 0).all():
        return numeric.astype(int), names
    unknown = sorted(set(as_str) - set(names))[:5]
    raise DataError(f"{source}: unknown labels {unknown}; expected one of {names} (set data.class_names)")


def patient_from_name(name: str, pattern: str) -> str:
    """Patient id from a file name by the first group of ``pattern`` (the file stem when it does not match)."""
    match = re.search(pattern, name) if pattern else None
    if match:
        return match.group(1) if match.groups() else match.group(0)
    return Path(name).name.split(".")[0]


def is_hidden(path: Path) -> bool:
    """Notebook checkpoints, macOS and Windows side files: never data."""
    return path.name.startswith(".") or path.name in HIDDEN


def _listing(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not is_hidden(p))


def _split_layout(root: Path, split_folders: dict[str, str] | None) -> list[tuple[str, Path]]:
    """(split, folder) pairs: folders named in ``split_folders`` (any case) or by a common split name; else the root
    itself is one training pool."""
    names = {**SPLIT_FOLDERS, **{str(k).lower(): str(v) for k, v in (split_folders or {}).items()}}
    bad = sorted({v for v in names.values() if v not in SPLITS})
    if bad:
        raise DataError(f"data.split_folders maps folders to {bad}; each value must be one of {list(SPLITS)}")
    folders = [d for d in _listing(root) if d.is_dir()]
    layout = [(names[d.name.lower()], d) for d in folders if d.name.lower() in names]
    missing = sorted(set(map(str, split_folders or {})) - {d.name for _, d in layout}, key=str.lower)
    missing = [m for m in missing if m.lower() not in {d.name.lower() for _, d in layout}]
    if missing:
        raise DataError(f"{root}: data.split_folders names {missing} but the folder has {[d.name for d in folders]}")
    return layout or [("train", root)]


def _check_classes(found: dict[str, dict[str, int]], root: Path) -> None:
    """Refuse an empty class folder or a class with no training image; warn about a class missing from a split."""
    for split, classes in found.items():
        empty = [c for c, n in classes.items() if n == 0]
        if empty:
            raise DataError(f"{root}: class folder(s) {[f'{split}/{c}' for c in empty]} hold no image; add images or "
                            "remove the folder (an empty class still gets a model output)")
    every = sorted({c for classes in found.values() for c in classes})
    for split, classes in found.items():
        absent = [c for c in every if c not in classes]
        if absent and split == "train":
            raise DataError(f"{root}: class(es) {absent} have no training folder; add <train>/{absent[0]}/ images "
                            "or remove that class from the other splits")
        if absent:
            log.warning("%s: split %r has no folder for class(es) %s; its metrics will not cover them", root, split,
                        absent)


def check_patient_regex(names: list[str], pattern: str, required: bool = False, where: str = "") -> bool:
    """True when ``pattern`` finds a patient id in at least one file name; when it finds none: a warning, or a
    DataError when patient ids are ``required`` (validation drawn by patient)."""
    if not pattern or not names or any(re.search(pattern, n) for n in names):
        return bool(pattern and names)
    text = (f"{where}data.patient_regex {pattern!r} matches no file name (e.g. {names[0]!r}), so every image counts as "
            "its own patient; set a pattern whose first group is the patient id, or patient_regex: '' when the names "
            "carry none")
    if required:
        raise DataError(text + " (validation is drawn by patient)")
    log.warning("%s", text)
    return False


def manifest_from_folder_tree(root: str | Path, patient_regex: str = r"(person\d+)", class_names: list[str] | None = None,
                              patient_scope: str = "global", split_folders: dict[str, str] | None = None,
                              patients_required: bool = False) -> Manifest:
    """Import ``root/<split>/<CLASS>/*.ext`` (or ``root/<CLASS>/*`` as one training pool).

    Split folders are those of ``split_folders`` ({folder: split}) or common names (Training, Testing, Validation,
    valid, dev, ..., any case); hidden files and folders (.ipynb_checkpoints, .DS_Store, __MACOSX) are skipped.
    Patient ids come from the file name by ``patient_regex``; a file that does not match is its own patient (a
    regex matching no file warns, or fails with ``patients_required`` when no val folder exists).
    ``patient_scope="split"`` prefixes ids with the split folder, for sets whose numbering restarts per folder.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; expected <split>/<CLASS>/<image> subfolders")
    layout = _split_layout(root, split_folders)
    rows, found = [], {}
    for split, split_dir in layout:
        classes = found.setdefault(split, {})
        for class_dir in (d for d in _listing(split_dir) if d.is_dir()):
            files = [p for p in _listing(class_dir) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            classes[class_dir.name] = classes.get(class_dir.name, 0) + len(files)
            for path in files:
                match = re.search(patient_regex, path.name) if patient_regex else None
                # no id in the name: the image is its own patient (its path, since names repeat across folders)
                patient = patient_from_name(path.name, patient_regex) if match else str(path.relative_to(root))
                rows.append({
                    "image": str(path),
                    "label": class_dir.name,
                    "patient_id": f"{split}/{patient}" if patient_scope == "split" else patient,
                    "site": "site0",
                    "split": split,
                })
    if not rows:
        raise DataError(f"{root}: no images found; expected <split>/<CLASS>/<image> subfolders (split folders such as "
                        f"train/test, or set data.split_folders; found {[d.name for d in _listing(root)][:8]})")
    _check_classes(found, root)
    check_patient_regex([Path(r["image"]).name for r in rows], patient_regex,
                        patients_required and "val" not in found, f"{root}: ")
    df = pd.DataFrame(rows)
    df["label"], names = _label_index(df["label"], class_names or sorted(df["label"].unique()), str(root))
    return Manifest(df, ["label"], names, "binary" if len(names) == 2 else "multiclass")


def manifest_from_medmnist(npz_path: str | Path, class_names: list[str] | None = None, task: str | None = None) -> Manifest:
    """Import a MedMNIST ``.npz`` (keys ``train_images``, ``train_labels``, ...); image refs are ``npz::key::index``."""
    npz_path = Path(npz_path).resolve()
    keys = set(npz_keys(npz_path))
    rows, label_blocks = [], []
    for split in ("train", "val", "test"):
        if f"{split}_images" not in keys:
            continue
        if f"{split}_labels" not in keys:
            raise DataError(f"{npz_path}: has {split}_images but no {split}_labels; re-download the file")
        labels = read_npz_labels(npz_path, split)
        label_blocks.append(labels)
        for i in range(len(labels)):
            rows.append({"image": f"{npz_path}::{split}_images::{i}", "patient_id": f"{split}{i:06d}", "site": "site0", "split": split})
    if not rows:
        raise DataError(f"{npz_path}: no <split>_images arrays (expected MedMNIST keys train_images, train_labels, ...)")
    labels = np.concatenate(label_blocks)
    df = pd.DataFrame(rows)
    if labels.shape[1] > 1 or task == "multilabel":
        columns = [f"label_{j}" for j in range(labels.shape[1])]
        for j, col in enumerate(columns):
            df[col] = labels[:, j].astype(int)
        return Manifest(df, columns, class_names or columns, "multilabel")
    df["label"] = labels[:, 0].astype(int)
    k = int(labels.max()) + 1
    names = class_names or [str(i) for i in range(k)]
    return Manifest(df, ["label"], names, task or ("binary" if k <= 2 else "multiclass"))


def absolute_ref(ref, base: Path) -> str:
    """An image or mask reference made absolute against ``base`` (the manifest CSV's folder); npz refs keep their
    ``::key::index`` tail."""
    ref = str(ref)
    path, sep, tail = ref.partition("::")
    if not os.path.isabs(path):
        path = os.path.normpath(base.resolve() / path)
    return path + sep + tail


def manifest_from_csv(path: str | Path, cfg: DataConfig) -> Manifest:
    """Import a user CSV with image, label column(s), patient, site and split columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest CSV not found")
    df = pd.read_csv(path)
    missing = [c for c in [cfg.image_column, *cfg.label_columns] if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; found {list(df.columns)}")
    df = df.rename(columns={cfg.image_column: "image", cfg.patient_column: "patient_id", cfg.site_column: "site"})
    df["image"] = [absolute_ref(p, path.parent) for p in df["image"]]
    if "mask" in df.columns:
        df["mask"] = [absolute_ref(p, path.parent) if isinstance(p, str) and p.strip() else None for p in df["mask"]]
    if "patient_id" not in df.columns:
        df["patient_id"] = [patient_from_name(Path(p).name, cfg.patient_regex) for p in df["image"]]
    df["patient_id"] = df["patient_id"].astype(str)
    if "site" not in df.columns:
        df["site"] = "site0"
    if "split" not in df.columns:
        df["split"] = "train"
    if cfg.task == "multilabel":
        for col in cfg.label_columns:
            if df[col].isna().any() or not df[col].isin([0, 1]).all():
                raise DataError(f"{path}: label column {col!r} must hold 0/1 for every row")
        return Manifest(df, list(cfg.label_columns), cfg.class_names or list(cfg.label_columns), "multilabel")
    col = cfg.label_columns[0]
    df[col], names = _label_index(df[col], cfg.class_names, str(path))
    return Manifest(df, [col], names, cfg.task)


def check_patient_leaks(manifest: Manifest, column: str = "patient_id") -> None:
    """Refuse a manifest in which one patient appears in two splits, listing the ids."""
    splits = manifest.df.groupby(column)["split"].nunique()
    leaked = splits[splits > 1]
    if len(leaked):
        ids = list(leaked.index[:10])
        where = manifest.df[manifest.df[column].isin(ids)].groupby(column)["split"].unique()
        detail = "; ".join(f"{pid}: {'/'.join(sorted(s))}" for pid, s in where.items())
        more = f" (+{len(leaked) - 10} more)" if len(leaked) > 10 else ""
        raise DataError(f"{len(leaked)} {column}(s) appear in more than one split: {detail}{more}; "
                        "assign each patient to a single split")


def resolve_data_dir(cfg: DataConfig, override: str | None = None) -> Path:
    """The base folder for relative data paths: --data, else $MEDFIT_DATA, else data.data_dir, else ../shared/data."""
    for candidate in (override, os.environ.get("MEDFIT_DATA"), cfg.data_dir, "../shared/data"):
        if candidate:
            return Path(candidate).expanduser()
    return Path("../shared/data")


def resolve_root(cfg: DataConfig, data_dir: Path) -> Path:
    """The data root of the config, resolved against the data dir when relative."""
    root = Path(cfg.root).expanduser()
    return root if root.is_absolute() or root.exists() else data_dir / root


def build_manifest(cfg: ExperimentConfig, data_dir: str | None = None,
                   groups_of: Callable[[pd.DataFrame], np.ndarray] | None = None) -> Manifest:
    """Build the experiment's manifest: import, apply data.corrections, draw the val split, subsample, refuse patient
    leaks. ``groups_of`` gives the unit of the val draw per row (``medfit.audit.split_grouper``: patient + duplicate
    group), else patients."""
    d = cfg.data
    root = resolve_root(d, resolve_data_dir(d, data_dir))
    if d.source == "folder":
        manifest = manifest_from_folder_tree(root, d.patient_regex, d.class_names or None, d.patient_scope,
                                             d.split_folders, patients_required=d.val_fraction > 0)
    elif d.source == "medmnist":
        manifest = manifest_from_medmnist(root, d.class_names or None, d.task if d.task == "multilabel" else None)
    else:
        manifest = manifest_from_csv(root, d)
    if manifest.task != d.task and not (d.task == "binary" and manifest.task == "multiclass"):
        raise DataError(f"{root}: data.task is {d.task!r} but the data look {manifest.task!r}; set data.task")
    if d.task == "binary" and len(manifest.class_names) != 2:
        raise DataError(f"{root}: a binary task needs 2 classes, found {manifest.class_names}")
    manifest.task = d.task
    if d.corrections:  # a reviewer's decisions (medfit review): before any split is drawn
        table = read_corrections(d.corrections, absolute_ref)
        manifest = apply_corrections(manifest, table, f"data.corrections {d.corrections}")
    if "val" not in set(manifest.df["split"]) and d.val_fraction > 0:
        groups = groups_of(manifest.df) if groups_of is not None else None
        manifest = assign_validation_split(manifest, d.val_fraction, d.split_seed, groups)
    if d.limit_per_split:
        manifest = limit_per_split(manifest, d.limit_per_split, d.split_seed)
    check_patient_leaks(manifest)
    return manifest
