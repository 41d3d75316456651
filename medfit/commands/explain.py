"""Saliency overlays (Grad-CAM family or attention rollout) of images with a trained run's model, the run's gallery
(TP/FP/TN/FN, or by class) and the quality check of its explanations."""
from __future__ import annotations

import argparse

from medfit.commands.common import add_run_argument, read_rows_csv
from medfit.errors import ConfigError
from medfit.explain.cam import METHODS
from medfit.explain.class_gallery import write_gallery
from medfit.explain.gallery import explain_rows, is_study_run, key_slice_saliency, rows_of
from medfit.explain.run_quality import N_IMAGES, write_explanation_quality
from medfit.explain.slices import slice_saliency
from medfit.report import write_report


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
                        help="write the test split's gallery (TP/FP/TN/FN, or correct and confused cases per class; "
                             "slice-mode study runs: and the key-slice overlays) and check the explanations "
                             "(--quality), then rewrite the report")
    parser.add_argument("--per-group", type=int, default=2, help="gallery cases per group")
    parser.add_argument("--slices", type=int, nargs="?", const=2, default=0, metavar="N",
                        help="slice-set runs: a map on every sampled slice of the N test studies (default 2) most "
                             "likely positive for --output")
    parser.add_argument("--output", help="with --slices: the output (label or class) to explain (default: 'any' "
                                         "when the run has it, else the last)")
    parser.add_argument("--quality", action="store_true",
                        help="check the explanations: map resolution, ROAD faithfulness and localisation in masks "
                             "against random maps, model-randomisation sanity check; then rewrite the report")
    parser.add_argument("--quality-images", type=int, default=N_IMAGES, help="test cases the quality check uses")


def _print_quality(q: dict) -> None:
    layer, f, r = q.get("target_layer") or {}, q["faithfulness"], q["randomisation"]
    if layer.get("warning"):
        print(f"warning: {layer['warning']}")
    print(f"faithfulness (ROAD, {f['n']} images): {f['road']:.3f} vs random maps {f['road_random']:.3f}")
    loc = q.get("localisation")
    if loc:
        print(f"pointing game {loc['pointing_hit_rate']:.2f} vs random {loc['pointing_hit_rate_random']:.2f}; "
              f"saliency in mask {loc['mass_in_mask']:.2f} vs random {loc['mass_in_mask_random']:.2f} "
              f"({loc['n']} images)")
    print(f"randomisation check: rank similarity {r['similarity']:.2f} to randomised models "
          f"({'passed' if r['passed'] else 'FAILED'}: must be below {r['limit']})")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit explain``."""
    if not (args.images or args.manifest or args.gallery or args.slices or args.quality):
        raise ConfigError("medfit explain: give image paths, --manifest CSV, --gallery (cases of the test split), "
                          "--quality, or --slices for the slices of slice-set studies")
    if args.slices:
        for rec in slice_saliency(args.run, studies=args.slices, output=args.output, method=args.method):
            print(f"{args.run.path / rec['png']}  p({rec['output']}) = {rec['prob']:.3f}, {rec['slices']} slices")
    if args.images or args.manifest:
        rows = read_rows_csv(args.manifest) if args.manifest else rows_of(args.images)
        for rec in explain_rows(args.run, rows, args.method, args.target_layer, args.out, class_index=args.class_index):
            print(f"{rec['png']}  p({rec['class']}) = {rec['prob']:.3f}")
    if args.gallery:
        print(write_gallery(args.run, per_group=args.per_group, method=args.method, target_layer=args.target_layer))
        if is_study_run(args.run):
            for png in key_slice_saliency(args.run, cases=2 * args.per_group, method=args.method,
                                          target_layer=args.target_layer):
                print(png)
    if args.gallery or args.quality:
        _print_quality(write_explanation_quality(args.run, n_images=args.quality_images, method=args.method,
                                                 target_layer=args.target_layer))
        if args.run.has("metrics"):
            print(write_report(args.run))
    return 0
