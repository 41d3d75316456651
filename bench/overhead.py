"""medfit's training-step time against a bare timm + PyTorch loop: same model, batch and data, one process.

Prints seconds per training epoch for both (median of interleaved repeats) and their ratio (target <= 1.05).
Augmentation is switched off in the medfit run so that both loops do the same arithmetic; the cost of medfit's
batch augmentation is printed on its own line.

    python bench/overhead.py [--images 640] [--size 64] [--model resnet18] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision import hook)
import lightning as L
import timm
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from medfit.config import config_from_dict
from medfit.data.augment import BatchAugment
from medfit.data.manifest import manifest_from_folder_tree
from medfit.data.splits import limit_per_split
from medfit.run_folder import RunFolder
from medfit.train.engine import build_trainer
from medfit.train.fit import make_loader
from medfit.train.inputs import dataset_for
from medfit.train.module import ClassifierModule

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest-xray-pneumonia-224"


class EpochTimer(Callback):
    """Wall time of every training epoch (validation excluded)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self.t0)


def bare_epoch(model, loader, opt, seed: int) -> float:
    """One epoch of the plain loop: forward, BCE loss, backward, AdamW step."""
    model.train()
    t0 = time.perf_counter()
    for x, y, _ in loader:
        loss = F.binary_cross_entropy_with_logits(model(x), y.view(-1, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"skipped: {args.data} not found")
        return 0
    tmp = Path(tempfile.mkdtemp())
    cfg = config_from_dict({
        "output_dir": str(tmp), "name": "overhead",
        "data": {"image_size": args.size, "channels": 1},
        "model": {"name": args.model},
        "train": {"epochs": 1, "batch_size": args.batch, "logger": "none", "progress_bar": False,
                  "optim": {"scheduler": "none"}, "class_balance": "none",
                  "augment": {"rotate_degrees": 0, "scale": [], "translate": 0, "brightness": 0, "contrast": 0}},
    })
    manifest = limit_per_split(manifest_from_folder_tree(args.data), args.images).split("train")
    dataset = dataset_for(manifest, cfg, progress=False)
    loader = make_loader(dataset, cfg, train=True)
    torch.manual_seed(0)

    bare_model = timm.create_model(args.model, in_chans=1, num_classes=1)
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=cfg.train.optim.lr, weight_decay=cfg.train.optim.weight_decay)
    timer = EpochTimer()
    medfit_model = timm.create_model(args.model, in_chans=1, num_classes=1)
    module = ClassifierModule(medfit_model, manifest.target, cfg.train, None, len(loader), cfg.seed)
    trainer = build_trainer(cfg, RunFolder(tmp), [timer], max_epochs=args.repeats + 1, limit_val_batches=0,
                            enable_checkpointing=False, logger=False)

    bare_times = [bare_epoch(bare_model, loader, bare_opt, 0) for _ in range(args.repeats + 1)][1:]  # first = warm-up
    trainer.fit(module, loader)
    medfit_times = timer.seconds[1:]

    augment = BatchAugment(config_from_dict({}).train.augment)
    x = next(iter(loader))[0]
    t0 = time.perf_counter()
    for i in range(20):
        augment(x, torch.Generator().manual_seed(i))
    aug_per_batch = (time.perf_counter() - t0) / 20

    bare, ours = statistics.median(bare_times), statistics.median(medfit_times)
    steps = len(loader)
    print(f"model {args.model}, {len(dataset)} images at {args.size}px, batch {args.batch}, {steps} steps/epoch, "
          f"{torch.get_num_threads()} threads")
    print(f"bare timm + PyTorch loop : {bare:.2f} s/epoch  ({bare / steps * 1000:.1f} ms/step)  runs {['%.2f' % t for t in bare_times]}")
    print(f"medfit (Lightning)       : {ours:.2f} s/epoch  ({ours / steps * 1000:.1f} ms/step)  runs {['%.2f' % t for t in medfit_times]}")
    print(f"ratio medfit / bare      : {ours / bare:.3f}  (target <= 1.05)")
    print(f"default batch augmentation: {aug_per_batch * 1000:.1f} ms/batch "
          f"({aug_per_batch / (bare / steps):.1%} of a bare step), not included above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
