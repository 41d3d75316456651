"""Export a trained run to ONNX (LoRA merged) and check it against PyTorch in onnxruntime."""
from __future__ import annotations

import argparse

from medfit.commands.common import add_run_argument
from medfit.models.export import export_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit export``."""
    add_run_argument(parser, "trained run folder")
    parser.add_argument("--out", help="ONNX file (default: in the run folder)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint to export")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit export``."""
    info = export_run(args.run, args.out, args.checkpoint)
    print(f"wrote {info['onnx']} (max |onnxruntime - PyTorch| = {info['max_abs_difference']:.1e} "
          f"<= {info['tolerance']}); predict with: medfit predict {args.run.path} --onnx {info['onnx']} IMAGES")
    return 0
