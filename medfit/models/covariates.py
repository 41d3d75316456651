"""Late fusion of clinical covariates with the image: the image network's pooled embedding concatenated with the
encoded covariates (medfit.data.covariates), then a small MLP to the logits."""
from __future__ import annotations

import torch
from torch import nn


class CovariateFusion(nn.Module):
    """``image(x)`` (B, image_dim) and covariates (B, covariate_dim) -> concat -> Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, image: nn.Module, image_dim: int, covariate_dim: int, num_outputs: int, hidden: int = 64,
                 dropout: float = 0.1):
        super().__init__()
        self.image = image
        self.covariate_dim = int(covariate_dim)
        self.head = nn.Sequential(nn.Linear(image_dim + covariate_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_outputs))
        self.medfit_head = ["head"] + [f"image.{p}" for p in getattr(image, "medfit_head", [])]

    def forward(self, x: torch.Tensor, covariates: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(x), covariates.to(x.dtype)], dim=1))


class BoundCovariates(nn.Module):
    """A covariate model with the covariates of a fixed batch bound, so that saliency tools can call it on images."""

    def __init__(self, model: nn.Module, covariates: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("covariates", covariates, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.covariates[: len(x)])

    def repeated(self, k: int) -> "BoundCovariates":
        """The same model for the batch with each image repeated ``k`` times in a row (repeat_interleave)."""
        return BoundCovariates(self.model, self.covariates.repeat_interleave(k, 0)).eval()


def call_model(model: nn.Module, x) -> torch.Tensor:
    """A model on a batch's inputs: an image tensor, or (image, covariates) as the covariate datasets give them."""
    return model(*x) if isinstance(x, (list, tuple)) else model(x)
