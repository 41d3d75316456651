"""Pretrain a ViT on a manifest's images without labels (MAE, DINO, box localisation); writes timm weights."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit pretrain``."""
    parser.add_argument("config", help="experiment YAML file (sections data, model, pretrain; train for the engine)")
    parser.add_argument("--data", help="base folder for relative data paths (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. pretrain.epochs=5")
    parser.add_argument("--name", help="run name (default: the config's name)")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit pretrain``."""
    from medfit.config import load_config
    from medfit.pretrain.fit import pretrain

    cfg = load_config(args.config, args.set + ([f"name={args.name}"] if args.name else []))
    run_dir = pretrain(cfg, data_dir=args.data, resume=args.resume)
    info = json.loads((run_dir / "pretrain_metrics.json").read_text())
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
