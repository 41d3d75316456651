"""The few-epoch binary training loop tests use to give a small network something learned (shuffled batches of 64)."""
import torch
from torch import nn


def fit_binary(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, epochs: int) -> nn.Module:
    """Train ``model`` on (x, y) with BCE-with-logits on its first output; returns it in eval mode."""
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = nn.functional.binary_cross_entropy_with_logits(model(x[idx])[:, 0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
