"""Fine-tuning methods on PneumoniaMNIST (28 px upsampled to 64): ViT-Tiny full vs LoRA vs linear probe vs ResNet-18 full.

Same data, optimiser (AdamW), batch and number of steps for every method; each method runs in its own process so its
peak resident memory (ru_maxrss) is its own. Prints trainable/total parameters, seconds per step and the ratio against
ViT-Tiny full fine-tuning (the plain baseline), peak RSS and its ratio, and test AUC (624 official test images).

Without weights every network starts from random init, which makes LoRA and the linear probe train a random
backbone: pass --vit-weights / --resnet-weights (timm weight files) for the comparison the studies made.

    python bench/finetune.py [--steps 150] [--batch 32] [--size 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision import hook)
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from medfit.config import LoraConfig, ModelConfig, OptimConfig, config_from_dict
from medfit.data.datasets import PreparedDataset
from medfit.data.manifest import build_manifest
from medfit.models import build_model, count_parameters
from medfit.models.finetune import param_groups
from medfit.train.inputs import dataset_for

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = {
    "vit_tiny full": dict(name="vit_tiny_patch16_224", finetune="full"),
    "vit_tiny lora": dict(name="vit_tiny_patch16_224", finetune="lora", lora=LoraConfig(r=8, alpha=16)),
    "vit_tiny linear": dict(name="vit_tiny_patch16_224", finetune="linear"),
    "resnet18 full": dict(name="resnet18", finetune="full"),
}
LR = {"full": 1e-3, "lora": 2e-3, "linear": 1e-2}


def load_split(split: str, size: int) -> PreparedDataset:
    """PneumoniaMNIST ``split`` at ``size`` px (through medfit's manifest and preprocessing)."""
    cfg = config_from_dict({
        "name": "bench",
        "data": {"source": "medmnist", "root": "pneumoniamnist/pneumoniamnist_reconstructed.npz",
                 "data_dir": str(DATA), "image_size": size},
        "preprocess": {"cache_dir": str(Path("/tmp") / "medfit-bench-cache")},
    })
    return dataset_for(build_manifest(cfg).split(split), cfg, progress=False)


def run_method(label: str, args) -> dict:
    """Train one method for ``args.steps`` steps and score the test split (in this process)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = dict(METHODS[label])
    weights = args.vit_weights if spec["name"].startswith("vit") else args.resnet_weights
    kwargs = {"img_size": args.size} if spec["name"].startswith("vit") else {}
    model = build_model(ModelConfig(in_chans=1, pretrained=weights or "", kwargs=kwargs, **spec), 1)
    trainable, total = count_parameters(model)
    train, test = load_split("train", args.size), load_split("test", args.size)
    lr = LR[spec["finetune"]]
    opt = torch.optim.AdamW(param_groups(model, OptimConfig(lr=lr)), lr=lr, weight_decay=1e-4)
    pos = float(train.labels.mean())
    pos_weight = torch.tensor([(1 - pos) / pos])
    g = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for step in range(args.steps):
        idx = torch.randint(0, len(train), (args.batch,), generator=g)
        x, y = train.images[idx], train.labels[idx].view(-1, 1)
        t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y, pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        probs = torch.cat([torch.sigmoid(model(test.images[i:i + 128])) for i in range(0, len(test), 128)])
    auc = roc_auc_score(test.labels.numpy(), probs[:, 0].numpy())
    return {"method": label, "trainable": trainable, "total": total,
            "step_seconds": float(np.median(times[min(5, len(times) - 1):])),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "test_auc": float(auc)}


def baseline_rss(args) -> float:
    """Peak RSS of a process that only imports and loads the data (subtracted to show each method's own memory)."""
    torch.set_num_threads(args.threads)
    load_split("train", args.size), load_split("test", args.size)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vit-weights", default="", help="timm weight file for vit_tiny_patch16_224")
    parser.add_argument("--resnet-weights", default="", help="timm weight file for resnet18")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method (or 'baseline'), print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(baseline_rss(args) if args.one == "baseline" else run_method(args.one, args)))
        return

    def child(name: str):
        cmd = [sys.executable, __file__, "--one", name, *sys.argv[1:]]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

    load_split("train", args.size), load_split("test", args.size)  # fill the preprocessing cache once
    base = child("baseline")
    rows = [child(name) for name in METHODS]
    ref = rows[0]
    print(f"PneumoniaMNIST 28->{args.size} px, {args.steps} steps x batch {args.batch}, AdamW, {args.threads} thread(s), "
          f"weights: vit={args.vit_weights or 'random init'}, resnet={args.resnet_weights or 'random init'}")
    print(f"peak RSS of a process that only loads the data: {base:.0f} MB")
    head = f"{'method':<17}{'trainable':>12}{'total':>12}{'train %':>9}{'s/step':>9}{'x time':>8}" \
           f"{'model MB':>10}{'x mem':>7}{'test AUC':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        own, ref_own = r["peak_rss_mb"] - base, ref["peak_rss_mb"] - base
        print(f"{r['method']:<17}{r['trainable']:>12,}{r['total']:>12,}{100 * r['trainable'] / r['total']:>8.2f}%"
              f"{r['step_seconds']:>9.4f}{r['step_seconds'] / ref['step_seconds']:>8.2f}{own:>10.0f}"
              f"{own / max(ref_own, 1e-9):>7.2f}{r['test_auc']:>10.3f}")
    print("x time / x mem: against 'vit_tiny full' (time = median step after 5 warm-up steps; "
          "memory = peak RSS above the data-only process)")


if __name__ == "__main__":
    main()
