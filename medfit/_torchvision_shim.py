"""Make PyPI's torchvision importable beside the CPU build of torch.

torchvision 0.28's compiled ops do not load against torch 2.13's CPU wheel, and
its fake-kernel registrations then fail at import with ``operator
torchvision::nms does not exist``. Defining the two op schemas before
torchvision is imported lets it import; medfit (and timm, open_clip, grad-cam)
use none of its compiled ops, and calling one still raises torchvision's own
clear "Couldn't load custom C++ ops" error.
"""
import importlib.util

import torch

_LIB = None


def _torchvision_ops_defined() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018  (raises when the op is undefined)
        return True
    except (AttributeError, RuntimeError):
        return False


def install() -> None:
    """Define torchvision::nms/qnms schemas when torchvision's compiled ops are missing."""
    global _LIB
    if _LIB is not None or importlib.util.find_spec("torchvision") is None:
        return
    if _torchvision_ops_defined():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB = lib


install()
