"""Clinical covariates as model inputs: manifest columns encoded with parameters fitted on the training rows only.

Numeric columns are standardised with the train mean and sd; a missing value becomes the train mean plus a
``<col>=missing`` indicator. Categorical columns are one-hot over the train categories (a missing value is its own
category, ``missing``); a category the training rows never had gets no one-hot bit and is counted in a warning.
The fitted encoder is plain JSON (it lives in the run folder): sklearn's StandardScaler/OneHotEncoder would need
pickle to travel with a run, and the arithmetic is a few lines.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from medfit.config import CovariatesConfig
from medfit.errors import DataError

log = logging.getLogger(__name__)
MISSING = "missing"


def covariate_columns(cfg: CovariatesConfig) -> list[str]:
    """Every covariate column of the config, numeric first."""
    return [*cfg.numeric, *cfg.categorical]


def _require_columns(df: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{where}: no column(s) {missing} for covariates; add them to the manifest or remove them "
                        f"from covariates.numeric / covariates.categorical")


def _numbers(values: pd.Series, column: str, where: str) -> np.ndarray:
    """A numeric column as floats (blank -> NaN); text that is not a number is an error naming it."""
    raw = values.replace(r"^\s*$", np.nan, regex=True)
    num = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & num.isna()
    if bad.any():
        raise DataError(f"{where}: covariate {column!r} is numeric but holds {raw[bad].iloc[0]!r} (row "
                        f"{raw[bad].index[0]}); fix the value or list {column!r} under covariates.categorical")
    return num.to_numpy(dtype=float)


def _categories(values: pd.Series) -> pd.Series:
    """Category labels as text ('missing' for blanks; 1 and 1.0 are one category)."""
    def label(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            return MISSING
        return str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v).strip()
    return values.map(label)


def fit_covariates(train: pd.DataFrame, cfg: CovariatesConfig, where: str = "manifest") -> dict | None:
    """The encoder of ``cfg``'s columns fitted on the training rows (None when no covariates are configured)."""
    if not covariate_columns(cfg):
        return None
    _require_columns(train, covariate_columns(cfg), where)
    numeric, categorical, features = {}, {}, []
    for col in cfg.numeric:
        x = _numbers(train[col], col, where)
        if np.isnan(x).all():
            raise DataError(f"{where}: covariate {col!r} has no value in the training rows; fill it or drop it")
        sd = float(np.nanstd(x))
        numeric[col] = {"mean": float(np.nanmean(x)), "sd": sd if sd > 0 else 1.0,
                        "missing_in_train": int(np.isnan(x).sum())}
        features += [col, f"{col}={MISSING}"]
    for col in cfg.categorical:
        counts = _categories(train[col]).value_counts()
        cats = sorted(counts.index, key=lambda c: (c == MISSING, c))
        categorical[col] = {"categories": cats, "train_counts": {c: int(counts[c]) for c in cats}}
        features += [f"{col}={c}" for c in cats]
    return {"numeric": numeric, "categorical": categorical, "features": features, "fitted_on": "train",
            "n_train": int(len(train))}


def covariate_width(encoder: dict | None) -> int:
    """The number of encoded covariate features (0 without covariates)."""
    return len(encoder["features"]) if encoder else 0


def encode_covariates(df: pd.DataFrame, encoder: dict, where: str = "manifest") -> np.ndarray:
    """(N, features) float32: standardised numbers with missing indicators, one-hot categories."""
    _require_columns(df, [*encoder["numeric"], *encoder["categorical"]], where)
    blocks = []
    for col, p in encoder["numeric"].items():
        x = _numbers(df[col], col, where)
        gone = np.isnan(x)
        blocks += [np.where(gone, 0.0, (x - p["mean"]) / p["sd"]), gone.astype(float)]
    for col, p in encoder["categorical"].items():
        cats = _categories(df[col])
        unseen = ~cats.isin(p["categories"])
        if unseen.any():
            log.warning("%s: covariate %r has %d value(s) the training rows never had (e.g. %r); they get no category",
                        where, col, int(unseen.sum()), cats[unseen].iloc[0])
        blocks += [(cats == c).to_numpy(dtype=float) for c in p["categories"]]
    return np.stack(blocks, axis=1).astype(np.float32) if blocks else np.zeros((len(df), 0), np.float32)
