"""Saliency overlays (Grad-CAM family or attention rollout) of images with a trained run's model."""
from __future__ import annotations

import argparse

from medfit.commands.common import add_run_argument, read_rows_csv
from medfit.errors import ConfigError
from medfit.explain.cam import METHODS
from medfit.explain.gallery import explain_rows, is_study_run, key_slice_saliency, rows_of, write_saliency_gallery
from medfit.explain.slices import slice_saliency


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit explain``."""
    add_run_argument(parser, "run folder (its config and best checkpoint)")
    parser.add_argument("images", nargs="*", help="image files or <file.npz>::<key>::<index> references")
    parser.add_argument("--manifest", help="CSV of rows to explain: an 'image' column, and for studies slice_index, "
                                           "mask, roi_label (read as in training; paths relative to the CSV)")
    parser.add_argument("--method", default="gradcam", choices=[*METHODS, "rollout"],
                        help="Grad-CAM family method, or attention rollout (ViTs)")
    parser.add_argument("--target-layer", help="module name to explain (default: found automatically)")
    parser.add_argument("--class-index", type=int, help="class to explain (default: positive / predicted class)")
    parser.add_argument("--out", help="output folder (default: the run's explain folder)")
    parser.add_argument("--gallery", action="store_true",
                        help="also write the TP/FP/TN/FN gallery of the test split for the report (slice-mode study "
                             "runs: and the key-slice overlays)")
    parser.add_argument("--per-group", type=int, default=2, help="gallery cases per TP/FP/TN/FN group")
    parser.add_argument("--slices", type=int, nargs="?", const=2, default=0, metavar="N",
                        help="slice-set runs: a map on every sampled slice of the N test studies (default 2) most "
                             "likely positive for --output")
    parser.add_argument("--output", help="with --slices: the output (label or class) to explain (default: 'any' "
                                         "when the run has it, else the last)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit explain``."""
    if not args.images and not args.manifest and not args.gallery and not args.slices:
        raise ConfigError("medfit explain: give image paths, --manifest CSV, --gallery for TP/FP/TN/FN cases of the "
                          "test split, or --slices for the slices of slice-set studies")
    if args.slices:
        for rec in slice_saliency(args.run, studies=args.slices, output=args.output, method=args.method):
            print(f"{args.run.path / rec['png']}  p({rec['output']}) = {rec['prob']:.3f}, {rec['slices']} slices")
    if args.images or args.manifest:
        rows = read_rows_csv(args.manifest) if args.manifest else rows_of(args.images)
        for rec in explain_rows(args.run, rows, args.method, args.target_layer, args.out, class_index=args.class_index):
            print(f"{rec['png']}  p({rec['class']}) = {rec['prob']:.3f}")
    if args.gallery:
        print(write_saliency_gallery(args.run, per_group=args.per_group, method=args.method,
                                     target_layer=args.target_layer))
        if is_study_run(args.run):
            for png in key_slice_saliency(args.run, cases=2 * args.per_group, method=args.method,
                                          target_layer=args.target_layer):
                print(png)
    return 0
