"""medfit's training-step time against a bare timm + PyTorch loop: same model, batch and data, one process.

Runs ``--repeats`` (>= 5) interleaved pairs of one training epoch each (bare, medfit, then medfit, bare, ...: both
see the same load drift), after one warm-up pair. Prints the minimum and the median seconds per epoch of each, the
ratio medfit / bare of the minima (the least disturbed repeats), of the medians, and the median of the per-pair
ratios (target <= 1.05), and says when the spread between repeats is too large for the ratio to mean anything.
Augmentation is switched off in the medfit run so that both loops do the same arithmetic; the cost of medfit's
default batch augmentation is printed on its own line.

    python bench/overhead.py [--images 640] [--size 64] [--model resnet18] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision import hook)
import timm
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from medfit.config import config_from_dict
from medfit.data.augment import BatchAugment
from medfit.data.manifest import manifest_from_folder_tree
from medfit.data.splits import limit_per_split
from medfit.run_folder import RunFolder
from medfit.train.engine import build_trainer, quiet_lightning
from medfit.train.fit import make_loader
from medfit.train.inputs import dataset_for
from medfit.train.module import ClassifierModule

TARGET = 1.05
# The ratio is trusted when each loop's median repeat is within this share of its fastest one: a wider spread is
# load from elsewhere on the machine, larger than the 5 % the target allows.
MAX_SPREAD = 0.05
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest-xray-pneumonia-224"


class EpochTimer(Callback):
    """Wall time of every training epoch (validation excluded)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self.t0)


def bare_epoch(model, loader, opt) -> float:
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
    parser.add_argument("--repeats", type=int, default=5, help="interleaved pairs of epochs, at least 5")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats: at least 5 (a median of fewer repeats on a shared machine means little)")
    if not Path(args.data).is_dir():
        print(f"skipped: {args.data} not found")
        return 0
    quiet_lightning()
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
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=cfg.train.optim.lr,
                                 weight_decay=cfg.train.optim.weight_decay)
    timer = EpochTimer()
    module = ClassifierModule(timm.create_model(args.model, in_chans=1, num_classes=1), manifest.target, cfg.train,
                              None, len(loader), cfg.seed)
    run = RunFolder(tmp)

    def medfit_epoch() -> float:
        trainer = build_trainer(cfg, run, [timer], max_epochs=1, limit_val_batches=0, enable_checkpointing=False,
                                logger=False)
        trainer.fit(module, loader)
        return timer.seconds[-1]

    bare_times, medfit_times = [], []
    for r in range(args.repeats + 1):  # pair 0 warms up both loops
        order = (("bare", lambda: bare_epoch(bare_model, loader, bare_opt)), ("medfit", medfit_epoch))
        for name, epoch in order if r % 2 == 0 else order[::-1]:
            (bare_times if name == "bare" else medfit_times).append(epoch())
    bare_times, medfit_times = bare_times[1:], medfit_times[1:]

    augment = BatchAugment(config_from_dict({}).train.augment)
    x = next(iter(loader))[0]
    t0 = time.perf_counter()
    for i in range(20):
        augment(x, torch.Generator().manual_seed(i))
    aug_per_batch = (time.perf_counter() - t0) / 20

    steps = len(loader)
    print(f"model {args.model}, {len(dataset)} images at {args.size}px, batch {args.batch}, {steps} steps/epoch, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats after a warm-up pair")
    for label, times in (("bare timm + PyTorch loop", bare_times), ("medfit (Lightning)      ", medfit_times)):
        print(f"{label}: min {min(times):.2f} s/epoch ({min(times) / steps * 1000:.1f} ms/step), median "
              f"{statistics.median(times):.2f}, spread {spread(times):.0%}  runs {['%.2f' % t for t in times]}")
    pairs = [m / b for m, b in zip(medfit_times, bare_times)]
    print(f"ratio medfit / bare: {min(medfit_times) / min(bare_times):.3f} of the minima, "
          f"{statistics.median(medfit_times) / statistics.median(bare_times):.3f} of the medians, "
          f"{statistics.median(pairs):.3f} median of the pairs ({min(pairs):.2f}-{max(pairs):.2f}), target <= {TARGET}")
    print(reliability(bare_times, medfit_times))
    print(f"default batch augmentation: {aug_per_batch * 1000:.1f} ms/batch "
          f"({aug_per_batch / (min(bare_times) / steps):.1%} of a bare step), not included above")
    return 0


def spread(times: list[float]) -> float:
    """How far the median repeat is above the fastest one, as a share of the fastest."""
    return statistics.median(times) / min(times) - 1


def reliability(bare: list[float], ours: list[float]) -> str:
    """Whether the repeats agree well enough for the ratio to be read against a 5 % target."""
    worst = max(spread(bare), spread(ours))
    if worst <= MAX_SPREAD:
        return f"repeats agree (spread <= {MAX_SPREAD:.0%}): the ratio is reliable"
    return (f"UNRELIABLE: repeats spread up to {worst:.0%} (> {MAX_SPREAD:.0%}), the machine is busy; the ratio of the "
            "minima is the best estimate but can be off by that much. Rerun on an idle machine.")


if __name__ == "__main__":
    sys.exit(main())
