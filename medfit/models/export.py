"""ONNX export of a trained network (LoRA merged), checked against PyTorch in onnxruntime; an ONNX-backed predictor."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medfit.errors import WeightsError
from medfit.models.finetune import merge_lora
from medfit.data.covariates import covariate_width
from medfit.models.registry import load_network, run_covariates
from medfit.run_folder import RunFolder, atomic_write, write_json

PARITY_TOLERANCE = 1e-4


def export_inputs(in_chans: int, image_size: int, covariates: int = 0, batch: int = 2,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Example inputs of an exported network: the image batch, and the encoded covariates when it takes them."""
    image = torch.rand(batch, in_chans, image_size, image_size, generator=generator)
    return (image, torch.randn(batch, covariates, generator=generator)) if covariates else (image,)


def export_onnx(model: nn.Module, path: str | Path, in_chans: int, image_size: int, opset: int = 17,
                covariates: int = 0) -> Path:
    """Write ``model`` (LoRA folded in) as ONNX with input ``image`` (B, C, H, W) (and ``covariates`` (B, F) for a
    covariate model) and output ``logits``, dynamic batch."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = merge_lora(model).eval()
    example = export_inputs(in_chans, image_size, covariates)
    names = ["image", "covariates"][: len(example)]
    with warnings.catch_warnings():
        # The TorchScript exporter takes ~1 s where the dynamo one takes ~20 s on CPU for the same graph.
        warnings.simplefilter("ignore")
        axes = {**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}}
        atomic_write(path, lambda tmp: torch.onnx.export(model, example, str(tmp), input_names=names,
                                                         output_names=["logits"], opset_version=opset, dynamo=False,
                                                         dynamic_axes=axes))
    return path


class OnnxClassifier(nn.Module):
    """An exported network run by onnxruntime behind the nn.Module call interface (tensor in, logits tensor out)."""

    def __init__(self, path: str | Path):
        super().__init__()
        import onnxruntime as ort  # optional runtime, ~1 s to import: only predict --onnx and export need it

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: ONNX file not found; export the run first (medfit export RUN)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_name = self.input_names[0]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_names):
            raise WeightsError(f"{self.path}: the ONNX model takes {', '.join(self.input_names)}; got {len(inputs)} "
                               "input(s) (a covariate model needs the rows' covariate columns)")
        feed = {n: x.detach().cpu().float().numpy() for n, x in zip(self.input_names, inputs)}
        return torch.from_numpy(np.asarray(self.session.run(None, feed)[0]))


@torch.no_grad()
def onnx_max_abs_difference(model: nn.Module, path: str | Path, *inputs: torch.Tensor) -> float:
    """Largest absolute difference between PyTorch and onnxruntime logits on the same inputs."""
    return float((merge_lora(model).eval()(*inputs) - OnnxClassifier(path)(*inputs)).abs().max())


def export_run(run: RunFolder, out: str | Path | None = None, which: str = "best", seed: int = 0) -> dict:
    """Export a run's ``which`` checkpoint to ONNX (default: the run folder's ONNX file) and check parity.

    Raises WeightsError when onnxruntime's logits differ from PyTorch's by more than 1e-4.
    """
    cfg = run.read_config()
    model = merge_lora(load_network(run, which))
    encoder = run_covariates(run)
    width = covariate_width(encoder)
    path = export_onnx(model, out or run.file("onnx"), cfg.data.channels, cfg.data.image_size, covariates=width)
    inputs = export_inputs(cfg.data.channels, cfg.data.image_size, width, 4, torch.Generator().manual_seed(seed))
    diff = onnx_max_abs_difference(model, path, *inputs)
    info = {"onnx": str(path), "checkpoint": run.checkpoint(which).name, "max_abs_difference": diff,
            "tolerance": PARITY_TOLERANCE, "input": [None, cfg.data.channels, cfg.data.image_size, cfg.data.image_size]}
    if width:
        info["covariates"] = {"input": [None, width], "features": encoder["features"],
                              "encoding": "medfit.data.covariates.encode_covariates with the encoder saved in the run"}
    if diff > PARITY_TOLERANCE:
        raise WeightsError(f"{path}: onnxruntime logits differ from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE}); "
                           f"the export is not faithful, do not deploy it")
    write_json(path.with_suffix(".json"), info)
    return info
