"""Shortcut signals: can a class be told apart from acquisition metadata and simple intensity statistics alone?"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

# column -> readable name; categorical columns are compared by their per-category class rate
NUMERIC = {"height": "image height", "width": "image width", "channels": "channels", "bit_depth": "bit depth",
           "mean": "mean intensity", "std": "intensity spread (std)", "p01": "dark level (1st percentile)",
           "p99": "bright level (99th percentile)"}
CATEGORICAL = {"photometric": "stored colour mode (photometric)", "colour": "colour content", "modality": "modality",
               "format": "file format", "site": "site"}
# column -> what the user would call it; each with what to try when it gives a class away
CAUSE = {"channels": "colour mode", "photometric": "colour mode", "colour": "colour mode", "height": "image size",
         "width": "image size", "bit_depth": "bit depth", "format": "file format", "mean": "brightness",
         "std": "brightness", "p01": "brightness", "p99": "brightness", "site": "site", "modality": "modality"}
ADVICE = {
    "colour mode": "store every class in one colour mode (convert the RGB files to greyscale, or all to RGB) and "
                   "check whether that class came from another source or export",
    "image size": "bring every class to one size and aspect ratio the same way (resize or crop before export), and "
                  "check whether that class came from another source",
    "bit depth": "convert every image to one bit depth",
    "file format": "re-encode every image in one format (JPEG artefacts alone can give a class away)",
    "brightness": "check exposure/windowing per class and normalise intensities (preprocess: recipe or ops such as "
                  "histogram normalisation)",
    "site": "the class comes mostly from one site: report metrics per site (medfit validate --train-sites) and add "
            "cases of that class from the other sites",
    "modality": "the class comes from another modality or sequence: keep one modality per model",
}
MAX_ROWS = 20000  # larger sets are subsampled (stratified) for the classifier


def _single_auc(x: pd.Series, y: np.ndarray, categorical: bool) -> float:
    """How well one feature alone separates y (0.5 = not at all, 1 = perfectly), direction-free."""
    if categorical:
        rate = pd.Series(y).groupby(x.astype(str).to_numpy()).mean()
        score = x.astype(str).map(rate).to_numpy(dtype=float)
    else:
        score = x.to_numpy(dtype=float)
    if np.unique(score).size < 2:
        return 0.5
    auc = roc_auc_score(y, score)
    return float(max(auc, 1 - auc))


def _classifier_auc(features: pd.DataFrame, y: np.ndarray, seed: int) -> float | None:
    """Cross-validated AUC of a small gradient-boosted classifier on all features (None when too few samples)."""
    folds = int(min(5, np.bincount(y).min()))
    if folds < 2:
        return None
    X = features.copy()
    cat_mask = [c in CATEGORICAL for c in X.columns]
    for c in X.columns:
        if c in CATEGORICAL:
            X[c] = pd.Categorical(X[c].astype(str)).codes
    leaf = int(min(20, max(3, len(y) // 50)))  # small sets: sklearn's default of 20 per leaf cannot split at all
    model = HistGradientBoostingClassifier(max_iter=60, max_depth=3, learning_rate=0.2, min_samples_leaf=leaf,
                                           random_state=seed, categorical_features=cat_mask)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob = cross_val_predict(model, X.to_numpy(dtype=float), y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, prob))


def _targets(labels: pd.DataFrame, class_names: list[str], task: str) -> dict[str, np.ndarray]:
    """One-vs-rest targets: the positive class for binary, every class for multiclass, every column for multilabel."""
    if task == "multilabel":
        return {name: labels[c].to_numpy().astype(int) for c, name in zip(labels.columns, class_names or labels.columns)}
    values = labels.iloc[:, 0].to_numpy().astype(int)
    names = class_names or [str(v) for v in sorted(set(values))]
    classes = [1] if task == "binary" else sorted(set(values))
    return {names[c] if c < len(names) else str(c): (values == c).astype(int) for c in classes}


def per_class_profile(features: pd.DataFrame, labels: pd.DataFrame, class_names: list[str], task: str) -> dict:
    """Per class: image sizes, bit depths, photometric, modality, format and site counts, intensity statistics."""
    if task == "multilabel":
        names = class_names or list(labels.columns)
        masks = {name: labels[c].to_numpy().astype(bool) for c, name in zip(labels.columns, names)}
    else:
        values = labels.iloc[:, 0].to_numpy().astype(int)
        masks = {(class_names[v] if v < len(class_names) else str(v)): values == v for v in sorted(set(values))}
    profile = {}
    for name, mask in masks.items():
        part = features[mask]
        sizes = (part["height"].astype(str) + "x" + part["width"].astype(str)).value_counts().head(5)
        profile[name] = {
            "images": int(mask.sum()),
            "sizes": {k: int(v) for k, v in sizes.items()},
            **{c: {str(k): int(v) for k, v in part[c].value_counts().head(5).items()}
               for c in ("bit_depth", "photometric", "colour", "modality", "format", "site") if c in part.columns},
            **{f"{c}_mean": round(float(part[c].mean()), 3) if len(part) else None for c in ("mean", "std")},
        }
    return profile


def shortcut_signals(features: pd.DataFrame, labels: pd.DataFrame, class_names: list[str], task: str,
                     auc_threshold: float = 0.95, seed: int = 0) -> dict:
    """Classifier AUC per class from metadata/statistics alone, single-feature AUCs, and warnings naming features."""
    if len(features) > MAX_ROWS:
        keep = features.sample(MAX_ROWS, random_state=seed).index
        features, labels = features.loc[keep], labels.loc[keep]
    features = features[[c for c in [*NUMERIC, *CATEGORICAL] if c in features.columns]].reset_index(drop=True)
    labels = labels.reset_index(drop=True)
    out = {"threshold": auc_threshold, "classes": {}, "warnings": [],
           "profile": per_class_profile(features, labels, class_names, task)}
    for name, y in _targets(labels, class_names, task).items():
        if y.min() == y.max():
            continue
        single = {NUMERIC.get(c) or CATEGORICAL[c]: round(_single_auc(features[c], y, c in CATEGORICAL), 4)
                  for c in features.columns}
        auc = _classifier_auc(features, y, seed)
        out["classes"][name] = {"auc": None if auc is None else round(auc, 4), "feature_auc": single}
        if auc is not None and auc >= auc_threshold:
            out["warnings"].append(shortcut_warning(name, auc, features, y, auc_threshold))
    return out


def _share_text(column: str, x: pd.Series, y: np.ndarray, name: str) -> str:
    """For a categorical feature, how the class differs, e.g. "RGB in 100 % of 'glioma' vs 2 % of the rest"."""
    values = x.astype(str).to_numpy()
    top = pd.Series(values[y == 1]).value_counts().index[0]
    inside, outside = (values[y == 1] == top).mean(), (values[y == 0] == top).mean() if (y == 0).any() else 0.0
    return f"{top!r} in {inside:.0%} of {name!r} vs {outside:.0%} of the rest"


def shortcut_warning(name: str, auc: float, features: pd.DataFrame, y: np.ndarray, auc_threshold: float) -> str:
    """The warning for one class: its strongest features grouped by cause in the user's words, and what to try."""
    single = {c: _single_auc(features[c], y, c in CATEGORICAL) for c in features.columns}
    ranked = sorted(single.items(), key=lambda kv: -kv[1])
    named = [kv for kv in ranked if kv[1] >= auc_threshold] or ranked[:3]
    causes: dict[str, list[str]] = {}
    for column, value in named:
        detail = f" ({_share_text(column, features[column], y, name)})" if column in CATEGORICAL else ""
        causes.setdefault(CAUSE.get(column, column), []).append(
            f"{NUMERIC.get(column) or CATEGORICAL[column]} (AUC {value:.2f}){detail}")
    features_text = "; ".join(f"{cause}: {', '.join(items)}" for cause, items in causes.items())
    advice = " ".join(f"{cause}: {ADVICE[cause]}." for cause in causes if cause in ADVICE)
    return (f"shortcut signal: class {name!r} is predictable from image metadata and intensity statistics alone "
            f"(cross-validated AUC {auc:.2f}); strongest: {features_text}. What to try: {advice}")
