"""Out-of-distribution gate: the Mahalanobis distance of an image's features to the nearest training class (class
means with one shared Ledoit-Wolf covariance, as in Lee et al., NeurIPS 2018), with the threshold chosen on
validation images at a stated false-positive rate. Pure arrays in, arrays out; saved without pickle."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf

from medfit.errors import ConfigError, DataError

METHOD = "Mahalanobis distance to the nearest training class mean (shared Ledoit-Wolf covariance)"


@dataclass(frozen=True)
class OodGate:
    """Class means (C, D), the shared precision matrix (D, D), and the distance above which an input is outside."""

    means: np.ndarray
    precision: np.ndarray
    threshold: float
    fpr: float

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row to its nearest class mean."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise DataError(f"OOD gate: features of shape {x.shape} for a gate of width {self.means.shape[1]}; "
                            "score with the run's own network")
        sq = np.full(len(x), np.inf)
        for mean in self.means:  # one class at a time: memory N x D, not N x C x D
            diff = x - mean
            sq = np.minimum(sq, ((diff @ self.precision) * diff).sum(axis=1))
        return np.sqrt(np.clip(sq, 0, None))

    def outside(self, features: np.ndarray) -> np.ndarray:
        """True where an input lies farther from the training data than the threshold."""
        return self.distances(features) > self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (read back with ``from_arrays``; no pickled objects)."""
        return {"means": self.means, "precision": self.precision, "threshold": np.array(self.threshold),
                "fpr": np.array(self.fpr)}

    @classmethod
    def from_arrays(cls, arrays) -> OodGate:
        """The gate saved by ``arrays``."""
        return cls(np.asarray(arrays["means"]), np.asarray(arrays["precision"]), float(arrays["threshold"]),
                   float(arrays["fpr"]))


def fit_gate(train: np.ndarray, labels: np.ndarray | None, val: np.ndarray, fpr: float = 0.05) -> OodGate:
    """Fit on training features (``labels``: one class per row, or None for one mean), then set the threshold so
    that a share ``fpr`` of the validation features lies outside."""
    if not 0 < fpr < 1:
        raise ConfigError(f"audit.ood_fpr {fpr}: give a share of validation images between 0 and 1, e.g. 0.05")
    train = np.asarray(train, dtype=np.float64)
    if len(train) < 2 or len(val) < 1:
        raise DataError(f"OOD gate: needs training and validation images (got {len(train)} and {len(val)})")
    labels = np.zeros(len(train), int) if labels is None else np.asarray(labels).astype(int)
    classes = np.unique(labels)
    means = np.stack([train[labels == c].mean(axis=0) for c in classes])
    centred = train - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    gate = OodGate(means, precision, 0.0, float(fpr))
    threshold = float(np.quantile(gate.distances(val), 1 - fpr, method="higher"))
    return OodGate(means, precision, threshold, float(fpr))


def outside_counts(outside: np.ndarray) -> dict:
    """n, how many are outside and their share."""
    n = len(outside)
    k = int(np.sum(outside))
    return {"n": n, "outside": k, "rate": round(k / n, 4) if n else None}


def ood_line(record: dict) -> str:
    """The gate in one line: threshold and how many images of each split lie outside."""
    rates = ", ".join(f"{s} {c['outside']} of {c['n']}" for s, c in record["splits"].items())
    return (f"distance threshold {record['threshold']:.2f} ({record['fpr']:.0%} of validation outside by design); "
            f"outside the training data: {rates}")
