"""Query-box localisation (UP-DETR style, Dai et al. 2021): crop a random region, augment it, and regress where it
came from given the whole image. No library provides this objective, so it is written here.

The query region is embedded by the shared encoder; its embedding plus a learned query token cross-attends to the
whole image's patch tokens, and an MLP predicts the box (centre x, centre y, width, height in image units). Loss:
L1 + generalised IoU, as in DETR.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.models.modules import MaskedVisionTransformerTIMM
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou_loss

from medfit.config import PretrainConfig
from medfit.pretrain.backbone import patch_size
from medfit.pretrain.views import crop_resize, jitter_intensity, random_boxes, whole_patches


class BoxLocObjective(nn.Module):
    """Box head and loss for query-region localisation."""

    def __init__(self, encoder: MaskedVisionTransformerTIMM, cfg: PretrainConfig, image_size: int):
        super().__init__()
        dim = encoder.vit.embed_dim
        heads = max(1, encoder.vit.blocks[-1].attn.num_heads)
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.query_token, std=0.02)
        self.norm_query, self.norm_image = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.cross_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.box_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 4))
        self.query_size = whole_patches(cfg.query_size or image_size // 2, patch_size(encoder.vit))
        self.scale = tuple(cfg.box_scale)

    def sample(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random query regions of each image (resized, intensity-jittered) and their boxes (x0, y0, x1, y1)."""
        boxes = random_boxes(len(images), self.scale, ratio=(1 / 2, 2), device=images.device)
        queries = jitter_intensity(crop_resize(images, boxes, self.query_size), 0.1, 0.2, blur_p=0.3)
        return queries, boxes

    def predict_boxes(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor,
                      queries: torch.Tensor) -> torch.Tensor:
        """Predicted boxes (x0, y0, x1, y1) of the queries within their images."""
        image_tokens = self.norm_image(encoder.encode(images))
        query = self.query_token + encoder(queries)[:, None]
        attended, _ = self.cross_attention(self.norm_query(query), image_tokens, image_tokens, need_weights=False)
        cxcywh = torch.sigmoid(self.box_head(query + attended)[:, 0])
        return box_convert(cxcywh, "cxcywh", "xyxy")

    def loss(self, encoder: MaskedVisionTransformerTIMM, images: torch.Tensor, **_) -> torch.Tensor:
        """L1 on (cx, cy, w, h) plus generalised-IoU loss of predicted against true query boxes."""
        queries, boxes = self.sample(images)
        pred = self.predict_boxes(encoder, images, queries)
        l1 = F.l1_loss(box_convert(pred, "xyxy", "cxcywh"), box_convert(boxes, "xyxy", "cxcywh"))
        return 5 * l1 + 2 * generalized_box_iou_loss(pred, boxes, reduction="mean")


def box_l1_error(pred: torch.Tensor, boxes: torch.Tensor) -> float:
    """Mean absolute error of (cx, cy, w, h) in image units."""
    return float((box_convert(pred, "xyxy", "cxcywh") - box_convert(boxes, "xyxy", "cxcywh")).abs().mean())
