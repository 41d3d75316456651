"""Masked autoencoding (He et al. 2021): hide most patches, reconstruct their pixels from the visible ones.

Masking, token gather/scatter and the decoder are lightly's (``random_token_mask``,
``MaskedVisionTransformerDecoderTIMM``); this module wires them to the shared encoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import MaskedVisionTransformerDecoderTIMM, MaskedVisionTransformerTIMM
from torch import nn

from medfit.config import PretrainConfig
from medfit.pretrain.backbone import has_windowed_blocks, patch_size


class MAEObjective(nn.Module):
    """MAE decoder and loss: mean squared error on the masked patches' pixels."""

    def __init__(self, encoder: MaskedVisionTransformerTIMM, cfg: PretrainConfig):
        super().__init__()
        vit = encoder.vit
        self.patch = patch_size(vit)
        self.mask_ratio, self.norm_pix_loss = cfg.mask_ratio, cfg.norm_pix_loss
        self.num_prefix = vit.num_prefix_tokens
        self.decoder_embed = nn.Linear(vit.embed_dim, cfg.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches, embed_dim=cfg.decoder_dim, depth=cfg.decoder_depth,
            num_heads=cfg.decoder_heads, num_prefix_tokens=self.num_prefix)
        self.prediction_head = nn.Linear(cfg.decoder_dim, self.patch ** 2 * vit.patch_embed.proj.in_channels)

    def predict(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor,
                idx_keep: torch.Tensor | None = None, idx_mask: torch.Tensor | None = None):
        """Predicted pixels of the masked patches ``(B, n_masked, p*p*C)`` and the mask indices (prefix-offset)."""
        b = len(images)
        seq = encoder.sequence_length
        if idx_keep is None or idx_mask is None:
            idx_keep, idx_mask = utils.random_token_mask((b, seq), self.mask_ratio, device=images.device)
        if has_windowed_blocks(encoder.vit):
            # windows need the whole grid: masked patches enter the encoder as mask tokens (SimMIM-style)
            tokens = self.decoder_embed(encoder.encode(images, idx_mask=idx_mask))
            decoded = self.decoder(tokens, idx_mask=idx_mask)
        else:
            kept = self.decoder_embed(encoder.encode(images, idx_keep=idx_keep))
            tokens = utils.repeat_token(self.decoder.mask_token, (b, seq)).type_as(kept)
            decoded = self.decoder(utils.set_at_index(tokens, idx_keep, kept))
        return self.prediction_head(utils.get_at_index(decoded, idx_mask)), idx_mask

    def targets(self, images: torch.Tensor, idx_mask: torch.Tensor) -> torch.Tensor:
        """The masked patches' pixels (per-patch normalised when ``norm_pix_loss``)."""
        target = utils.get_at_index(utils.patchify(images, self.patch), idx_mask - self.num_prefix)
        return utils.normalize_mean_var(target, dim=-1) if self.norm_pix_loss else target

    def loss(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor, **_) -> torch.Tensor:
        """Reconstruction MSE on freshly masked patches."""
        pred, idx_mask = self.predict(encoder, images)
        return F.mse_loss(pred, self.targets(images, idx_mask))

    @torch.no_grad()
    def reconstruct(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor, generator: torch.Generator):
        """(masked input, reconstruction with visible patches pasted back) for pictures and tests, in pixel units."""
        b, seq = len(images), encoder.sequence_length
        noise = torch.rand(b, seq, generator=generator).to(images.device)
        noise[:, : self.num_prefix] = -1  # prefix tokens are always kept
        order = noise.argsort(dim=1)
        keep = self.num_prefix + int((seq - self.num_prefix) * (1 - self.mask_ratio))
        idx_keep, idx_mask = order[:, :keep], order[:, keep:]
        pred, _ = self.predict(encoder, images, idx_keep, idx_mask)
        patches = utils.patchify(images, self.patch)
        if self.norm_pix_loss:  # show pixels: restore each masked patch's own mean and spread
            target = utils.get_at_index(patches, idx_mask - self.num_prefix)
            pred = pred * (target.var(dim=-1, keepdim=True) + 1e-6).sqrt() + target.mean(dim=-1, keepdim=True)
        masked = utils.set_at_index(patches, idx_mask - self.num_prefix, torch.zeros_like(pred))
        filled = utils.set_at_index(patches, idx_mask - self.num_prefix, pred.clamp(0, 1))
        return (utils.unpatchify(masked, self.patch, images.shape[1]),
                utils.unpatchify(filled, self.patch, images.shape[1]), idx_mask)
