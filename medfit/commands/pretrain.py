"""Pretrain a ViT on a manifest's images without labels (MAE, DINO, box localisation); writes timm weights."""
from __future__ import annotations

import argparse

from medfit.commands.common import add_config_arguments, load_experiment
from medfit.pretrain.fit import pretrain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit pretrain``."""
    add_config_arguments(parser, "experiment YAML file (sections data, model, pretrain; train for the engine)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit pretrain``."""
    info = pretrain(load_experiment(args), data_dir=args.data, resume=args.resume).read_json("pretrain_metrics")
    print(f"pretrained {info['steps']} steps ({', '.join(info['objectives'])}) in {info['fit_seconds']} s, "
          f"{info['images_per_second']} img/s; losses {info['losses']}")
    probe = info.get("probe")
    if probe:
        for kind in ("pretrained", "random_init"):
            s = probe[kind]
            print(f"{kind:>11}: linear-probe AUC {s['linear_probe_auc']:.3f}, k-NN AUC {s['knn_auc']:.3f} "
                  f"({probe['split']}, {probe['scored_images']} images)")
    print(f"weights: {info['weights']}  (fine-tune with {info['finetune']})")
    return 0
