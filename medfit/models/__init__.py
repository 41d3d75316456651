"""Models: a registry of model kinds (timm, fusion, open_clip, zero-shot CLIP, MONAI 3D, VLM), volume-mode wrappers,
fine-tuning methods (full / linear probe / LoRA), safe checkpoint loading and export."""
from medfit.models.parameters import count_parameters
from medfit.models.registry import build_model, build_network, load_network

__all__ = ["build_model", "build_network", "count_parameters", "load_network"]
