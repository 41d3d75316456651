"""The prediction task (binary / multiclass / multilabel): outputs, activation, loss, probability columns, AUC.

Every place that used to branch on the task string asks a ``Task`` instead.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from medfit.errors import DataError

TaskKind = Literal["binary", "multiclass", "multilabel"]
KINDS = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class Task:
    """What is predicted: its kind, class names (binary/multiclass) and label columns (one, or one per label)."""

    kind: str
    class_names: tuple[str, ...] = ()
    label_columns: tuple[str, ...] = ("label",)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DataError(f"task {self.kind!r}: expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "label_columns", tuple(self.label_columns))

    @classmethod
    def of(cls, source) -> "Task":
        """The task of anything with ``task``, ``class_names`` and ``label_columns`` (a Manifest or DataConfig)."""
        return cls(source.task, tuple(source.class_names), tuple(source.label_columns))

    def one_of_k(self) -> "Task":
        """The task as a choice among its classes (a binary task as two classes), as option scorers see it."""
        if self.is_multilabel:
            raise DataError("a multilabel task is not a choice among classes; give one answer per label instead")
        return Task("multiclass", self.class_names, self.label_columns)

    def from_choice(self, probs: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities of a choice as this task's probability columns (binary: class 1 only)."""
        return probs[:, 1:2] if self.is_binary else probs

    @property
    def is_binary(self) -> bool:
        return self.kind == "binary"

    @property
    def is_multiclass(self) -> bool:
        return self.kind == "multiclass"

    @property
    def is_multilabel(self) -> bool:
        return self.kind == "multilabel"

    @property
    def label(self) -> str:
        """The single label column of a binary or multiclass task."""
        return self.label_columns[0]

    @property
    def output_names(self) -> tuple[str, ...]:
        """One name per model output: the positive class, each class, or each label."""
        if self.is_binary:
            return (self.class_names[-1] if self.class_names else "1",)
        return self.label_columns if self.is_multilabel else self.class_names

    @property
    def num_outputs(self) -> int:
        """Width of the model's output: 1 for binary, classes for multiclass, labels for multilabel."""
        return 1 if self.is_binary else len(self.output_names)

    @property
    def probability_columns(self) -> list[str]:
        """``prob`` for binary, ``prob_<class or label>`` otherwise."""
        return ["prob"] if self.is_binary else [f"prob_{n}" for n in self.output_names]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities from logits: softmax for multiclass, sigmoid otherwise."""
        return logits.softmax(dim=1) if self.is_multiclass else torch.sigmoid(logits)

    def label_tensor(self, labels: np.ndarray) -> torch.Tensor:
        """Labels as the loss wants them: class indices (int64) for multiclass, floats otherwise."""
        return torch.from_numpy(np.asarray(labels).astype(np.int64 if self.is_multiclass else np.float32))

    def loss(self, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Cross-entropy of the task (softmax CE, or BCE with ``weights`` as the positive-class weight)."""
        if self.is_multiclass:
            return F.cross_entropy(logits, y.long(), weight=weights, label_smoothing=label_smoothing)
        target = y.view_as(logits).float()
        if label_smoothing:
            target = target * (1 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weights)

    def labels(self, table: pd.DataFrame) -> np.ndarray:
        """Labels of a table: (N,) ints for binary/multiclass, (N, L) for multilabel."""
        if self.is_multilabel:
            return table[list(self.label_columns)].to_numpy(dtype=np.float32)
        return table[self.label].to_numpy(dtype=np.int64)

    def probability_matrix(self, table: pd.DataFrame) -> np.ndarray:
        """(N, outputs) probabilities from a predictions table's probability columns."""
        missing = [c for c in self.probability_columns if c not in table.columns]
        if missing:
            raise DataError(f"predictions lack the probability columns {missing}; predict with this run's model")
        return table[self.probability_columns].to_numpy(dtype=float)

    def class_weights(self, labels: np.ndarray) -> torch.Tensor:
        """Loss weights against imbalance: n_neg / n_pos per positive output, or n / (K * n_k) per class."""
        y = np.asarray(labels)
        if self.is_multiclass:
            counts = np.bincount(y.astype(int), minlength=self.num_outputs).clip(min=1)
            return torch.tensor(len(y) / (len(counts) * counts), dtype=torch.float32)
        pos = np.clip(y.reshape(len(y), -1).sum(axis=0), 1, None)
        return torch.tensor((len(y) - pos) / pos, dtype=torch.float32)

    def auc(self, y: np.ndarray, p: np.ndarray) -> float:
        """ROC AUC (macro one-vs-rest for multiclass, macro over labels for multilabel); NaN when undefined."""
        try:
            if self.is_binary:
                return float(roc_auc_score(y, p[:, 0] if np.ndim(p) == 2 else p))
            if self.is_multiclass:
                return float(roc_auc_score(y, p, multi_class="ovr", average="macro",
                                           labels=list(range(self.num_outputs))))
            return float(roc_auc_score(y, p, average="macro"))
        except ValueError:
            return float("nan")

    def auc_defined(self, labels: np.ndarray) -> bool:
        """Whether these labels have an AUC (both outcomes of every class or label): scored against themselves."""
        y = np.asarray(labels)
        perfect = np.eye(self.num_outputs)[y.astype(int)] if self.is_multiclass else y.astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns before returning NaN for one class
            return len(y) > 0 and not np.isnan(self.auc(y, perfect))

    def strata(self, table: pd.DataFrame) -> np.ndarray:
        """A stratum per row for stratified splits (multilabel: the most frequent positive label, 0 when none)."""
        if self.is_multilabel:
            y = table[list(self.label_columns)].to_numpy()
            return np.where(y.any(axis=1), y.argmax(axis=1) + 1, 0)
        return table[self.label].to_numpy()
