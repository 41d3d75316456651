"""Figures of a pretraining run: MAE reconstructions and the class token's last-block attention."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from medfit.run_folder import atomic_write  # noqa: E402


@torch.no_grad()
def class_token_attention(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The class token's attention over the patch grid in the last (global) block, mean over heads: ``(B, g, g)``."""
    vit = encoder.vit
    tokens = vit.norm_pre(encoder.preprocess(images))
    for block in vit.blocks[:-1]:
        tokens = block(tokens)
    last = vit.blocks[-1]
    attn = last.attn
    x = last.norm1(tokens)
    b, n, _ = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, N, N)
    p = vit.num_prefix_tokens
    cls = weights[:, :, 0, p:].mean(dim=1)
    g = math.isqrt(n - p)
    return cls.reshape(b, g, g)


def save_mae_reconstructions(images: torch.Tensor, masked: torch.Tensor, filled: torch.Tensor, path: Path) -> Path:
    """Rows: original, masked input, reconstruction (visible patches pasted back)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.2), squeeze=False)
    for j in range(n):
        for i, (row, title) in enumerate(((images, "image"), (masked, "masked"), (filled, "reconstruction"))):
            ax = axes[i][j]
            ax.imshow(row[j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.suptitle("MAE reconstructions (held-out images)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def save_attention_maps(images: torch.Tensor, maps: torch.Tensor, path: Path) -> Path:
    """Each image with the class token's attention upsampled over it."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 2.9), squeeze=False)
    size = images.shape[-1]
    up = torch.nn.functional.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear")[:, 0]
    for j in range(n):
        axes[0][j].imshow(images[j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1][j].imshow(images[j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1][j].imshow(up[j].cpu().numpy(), cmap="inferno", alpha=0.55)
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].set_ylabel("image", fontsize=8)
    axes[1][0].set_ylabel("CLS attention", fontsize=8)
    fig.suptitle("last-block class-token attention (mean over heads)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
