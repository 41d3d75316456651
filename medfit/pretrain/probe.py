"""How good are frozen pretrained features? Linear-probe and k-NN AUC on a labelled split."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medfit.task import Task


@torch.no_grad()
def extract_features(encoder: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Pooled encoder features ``(N, D)`` of unmasked images (eval mode)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = [encoder(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    encoder.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def auc_score(y: np.ndarray, proba: np.ndarray, task: str) -> float:
    """AUC of (N, K) class probabilities under the task (binary: of class 1)."""
    classes = tuple(str(k) for k in range(proba.shape[1]))
    t = Task(task, classes)
    return t.auc(y, t.from_choice(proba) if t.is_binary else proba)


def linear_probe_auc(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                     task: str, seed: int = 0) -> float:
    """AUC of an L2-regularised logistic regression on standardised frozen features."""
    if task == "multilabel":
        return float(np.nanmean([linear_probe_auc(train_x, train_y[:, j], test_x, test_y[:, j], "binary", seed)
                                 for j in range(train_y.shape[1])]))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, random_state=seed))
    clf.fit(train_x, train_y.astype(int))
    return auc_score(test_y, clf.predict_proba(test_x), task)


def knn_auc(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, task: str,
            k: int = 20, temperature: float = 0.07) -> float:
    """AUC of a cosine k-NN vote weighted by exp(similarity / T) (the DINO evaluation)."""
    if task == "multilabel":
        return float(np.nanmean([knn_auc(train_x, train_y[:, j], test_x, test_y[:, j], "binary", k, temperature)
                                 for j in range(train_y.shape[1])]))
    a = F.normalize(torch.from_numpy(train_x).float(), dim=1)
    b = F.normalize(torch.from_numpy(test_x).float(), dim=1)
    sim, idx = (b @ a.T).topk(min(k, len(a)), dim=1)
    weights = (sim / temperature).exp()
    y = torch.from_numpy(train_y.astype(np.int64))
    n_classes = int(max(y.max().item() + 1, 2))
    votes = torch.zeros(len(b), n_classes).scatter_add_(1, y[idx], weights)
    proba = (votes / votes.sum(dim=1, keepdim=True)).numpy()
    return auc_score(test_y, proba, task)


def probe_scores(encoder: torch.nn.Module, train_images: torch.Tensor, train_y: np.ndarray,
                 test_images: torch.Tensor, test_y: np.ndarray, task: str, k: int = 20, seed: int = 0) -> dict:
    """{"linear_probe_auc", "knn_auc"} of the encoder's frozen features."""
    tr, te = extract_features(encoder, train_images), extract_features(encoder, test_images)
    return {"linear_probe_auc": round(linear_probe_auc(tr, train_y, te, test_y, task, seed), 4),
            "knn_auc": round(knn_auc(tr, train_y, te, test_y, task, k), 4)}
