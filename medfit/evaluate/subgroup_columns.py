"""The subgroup of every prediction row: manifest columns (evaluate.subgroups) and groups read from the image path
(evaluate.subgroup_patterns), matched to the predictions by their identifying columns."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from medfit.errors import ConfigError

KEYS = ("image", "split", "slice_index", "offset")
NO_MATCH = "(no match)"
MISSING = "(missing)"


def pattern_groups(images, pattern: str) -> np.ndarray:
    """Per image path: the regex's first group (or whole match), else '(no match)'."""
    regex = re.compile(pattern)
    out = []
    for image in images:
        m = regex.search(str(image))
        out.append(NO_MATCH if m is None else (m.group(1) if regex.groups else m.group(0)))
    return np.array(out, dtype=object)


def manifest_columns(pred: pd.DataFrame, manifest: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """The ``columns`` for the rows of ``pred``: its own, else the manifest's (rows matched on image, split, ...)."""
    need = [c for c in columns if c not in pred]
    if not need:
        return pred[columns]
    available = sorted(set(pred.columns) | set(manifest.columns if manifest is not None else []))
    missing = [c for c in need if manifest is None or c not in manifest]
    if missing:
        raise ConfigError(f"evaluate.subgroups: column(s) {missing} not in the run's manifest (columns: "
                          f"{', '.join(available)}); name manifest columns or use evaluate.subgroup_patterns")
    keys = [k for k in KEYS if k in pred and k in manifest]
    extra = manifest[keys + need].drop_duplicates(keys)
    merged = pred[keys].merge(extra, on=keys, how="left", validate="many_to_one")
    return pd.concat([pred[[c for c in columns if c in pred]].reset_index(drop=True), merged[need]], axis=1)[columns]


def subgroup_columns(pred: pd.DataFrame, manifest: pd.DataFrame | None, columns: list[str],
                     patterns: dict) -> dict[str, np.ndarray]:
    """Attribute name -> the subgroup of every row of ``pred`` (text; '(missing)' for an empty cell)."""
    out = {}
    if columns:
        table = manifest_columns(pred, manifest, list(columns))
        out = {c: table[c].astype(object).where(table[c].notna(), MISSING).astype(str).to_numpy() for c in columns}
    for name, pattern in patterns.items():
        out[str(name)] = pattern_groups(pred["image"], str(pattern))
    return out
