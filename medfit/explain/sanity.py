"""The model-randomisation sanity check of saliency maps (Adebayo et al. 2018): maps of the trained model must differ
from maps of the same architecture with every layer re-initialised, or they show the image, not the model."""
from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

SIMILARITY_LIMIT = 0.5  # median rank correlation above this: the maps barely depend on the learnt weights


def randomised_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy with every layer re-initialised (cascading to the bottom): reset_parameters where a module has it,
    N(0, 0.02) for parameters held directly by other modules (position embeddings, class tokens, LoRA scalings)."""
    rand = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1_000_003 + seed)  # not the seed a model is usually built with: its own init again
        for module in rand.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                try:
                    reset()
                    continue
                except TypeError:  # a wrapper whose reset_parameters needs arguments (peft layers)
                    pass
            for p in module.parameters(recurse=False):
                p.normal_(0, 0.02)
    return rand.eval()


def rank_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of maps: Spearman correlation of their pixels (0 when either map is constant)."""
    return np.array([spearmanr(p.ravel(), q.ravel())[0] if p.std() > 0 and q.std() > 0 else 0.0
                     for p, q in zip(a, b)], dtype=float)


def randomisation_check(explain, model: nn.Module, images: torch.Tensor, trained_maps: np.ndarray,
                        seeds=(0, 1, 2), limit: float = SIMILARITY_LIMIT) -> dict:
    """Median rank similarity of the trained model's maps to those of randomised copies (``explain(model, images)``
    gives maps); passed when it is below ``limit``."""
    per_seed = [float(np.median(rank_similarity(trained_maps, explain(randomised_copy(model, s), images))))
                for s in seeds]
    median = float(np.median(per_seed))
    return {"test": "model randomisation (Adebayo et al. 2018): every layer re-initialised",
            "similarity": median, "per_seed": per_seed, "limit": limit, "passed": bool(median < limit),
            "n_images": len(images)}
