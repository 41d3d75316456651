"""Explanations: Grad-CAM family (CNNs and ViTs), attention rollout (ViTs), PNG overlays with the probability."""
from medfit.explain.cam import compute_cam, find_target_layer
from medfit.explain.rollout import attention_rollout

__all__ = ["attention_rollout", "compute_cam", "find_target_layer"]
