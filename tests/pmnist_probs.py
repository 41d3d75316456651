"""Realistic probabilities for evidence tests: logistic regression on 14x14-downsampled PneumoniaMNIST (about 1 s)."""
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression


def pixels(images: np.ndarray) -> np.ndarray:
    """28x28 images -> 196 features in [0, 1] (2x2 mean pooling)."""
    return images.reshape(len(images), 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(images), -1) / 255.0


def pneumonia_probabilities(data_root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(labels, P(pneumonia)) for 'holdout' (2208 official-train images the model did not see), 'val' and 'test'."""
    d = np.load(data_root / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz")
    x, y = pixels(d["train_images"]), d["train_labels"].ravel().astype(int)
    order = np.random.default_rng(0).permutation(len(y))
    fit, holdout = order[:2500], order[2500:]
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x[fit], y[fit])
    out = {"holdout": (y[holdout], model.predict_proba(x[holdout])[:, 1])}
    for split in ("val", "test"):
        out[split] = (d[f"{split}_labels"].ravel().astype(int), model.predict_proba(pixels(d[f"{split}_images"]))[:, 1])
    return out
