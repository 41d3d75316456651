"""Quality benchmark: medfit trained and evaluated on the held-in benchmarks with the shipped configs, printed in one
table beside the published anchors.

Benchmarks (each a shipped config, trained from scratch through medfit's pipeline, scored on its official test split):
  demo      configs/chest-xray-demo.yaml   Kermany chest X-rays (224 px JPEGs), 624 test images
  pmnist28  configs/pneumoniamnist.yaml    PneumoniaMNIST official splits, 28 px (the same 624 test images)
  pmnist64  configs/pneumoniamnist.yaml    the same at 64 px (data.image_size=64)
  adrenal   configs/adrenalmnist3d.yaml    AdrenalMNIST3D 28^3 official splits, 3D CNN
Columns: test AUC with its bootstrap CI; accuracy, sensitivity and specificity at the threshold chosen on validation
(Youden), carried to test; seconds of training (fit) and of the whole run (prepare + fit + predict + evaluate);
training images per second; the 1-minute load average when the run ended (the machine may be shared).
Anchors are the published figures on the same test images (MedMNIST v2 reports accuracy at threshold 0.5).

``--ablation NAME`` trains the variants of one ablation set instead and prints which recipe element moved which
number (differences against the set's first row). ``--record FILE`` appends each finished run as a JSON line;
with ``--reuse`` a run already in FILE (same benchmark and overrides) is read back instead of trained again.

    nice -n 10 python bench/quality.py [--quick] [--only demo,pmnist28] [--ablation demo-gap] [--set KEY=VALUE ...]
        [--data ../shared/data] [--out runs/bench-quality] [--record runs/bench-quality/runs.jsonl --reuse]

Measured figures: README.md, section "Benchmarks".
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import medfit  # noqa: F401  (torchvision shim before timm/lightning)

import pandas as pd

from medfit.commands.pipeline import evaluate_all, train_run
from medfit.config import load_config
from medfit.evaluate.metrics import binary_metrics, choose_threshold
from medfit.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Anchor:
    """A published result on the same test images."""

    source: str
    auc: float
    acc: float
    sens: float | None = None
    spec: float | None = None


@dataclass(frozen=True)
class Bench:
    """A benchmark: a shipped config (plus overrides), its anchors and the targets of issue 18."""

    title: str
    config: str
    overrides: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...] = ()
    target_auc: float = 0.0
    target_acc: float = 0.0
    max_fit_seconds: float = 0.0
    quick: tuple[str, ...] = ("data.limit_per_split=160", "train.epochs=1")


MEDMNIST_2D = (Anchor("MedMNIST v2 ResNet-18 (28)", 0.944, 0.854), Anchor("MedMNIST v2 ResNet-50 (224)", 0.962, 0.884),
               Anchor("MedMNIST v2 AutoML Vision", 0.991, 0.946))
BENCHES = {
    "demo": Bench("chest X-ray demo (JPEGs)", "configs/chest-xray-demo.yaml",
                  anchors=(Anchor("Kermany et al. 2018", 0.968, 0.928, 0.932, 0.901),),
                  target_auc=0.975, target_acc=0.92, max_fit_seconds=900),
    "pmnist28": Bench("PneumoniaMNIST 28 px", "configs/pneumoniamnist.yaml", anchors=MEDMNIST_2D,
                      target_auc=0.985, target_acc=0.93),
    "pmnist64": Bench("PneumoniaMNIST 64 px", "configs/pneumoniamnist.yaml", ("data.image_size=64",), MEDMNIST_2D),
    "adrenal": Bench("AdrenalMNIST3D 28^3 (3D)", "configs/adrenalmnist3d.yaml",
                     anchors=(Anchor("MedMNIST v2 ResNet-18+3D", 0.827, 0.721),
                              Anchor("MedMNIST v2 ResNet-50+3D", 0.828, 0.745)),
                     target_auc=0.88, quick=("data.limit_per_split=40", "train.epochs=1")),
}

# Ablation sets: (label, benchmark, overrides). The first row is the reference the others are compared with.
PMNIST_DEMO = ("train.epochs=8",)  # PneumoniaMNIST through the demo recipe (8 epochs)
# The shipped demo keeps the middle 3/4 of the columns (MedMNIST centre-cropped the ~4:3 originals to a square; the
# 224 px JPEGs are the originals squashed to a square) and trains with random resized crops; these undo each.
NO_CROP, NO_RRC = "preprocess.ops=[]", "train.augment.resized_crop=[]"
ABLATIONS = {
    # Where the demo loses against PneumoniaMNIST on the same 624 test images: one recipe element at a time.
    "demo-gap": [
        ("PneumoniaMNIST 28 px, demo recipe (8 ep)", "pmnist28", PMNIST_DEMO),
        ("JPEGs 28 px, whole image", "demo", ("data.image_size=28", NO_CROP, NO_RRC)),
        ("JPEGs 28 px, centre crop 3/4 width", "demo", ("data.image_size=28", NO_RRC)),
        ("JPEGs 28 px, centre crop + resized crops", "demo", ("data.image_size=28",)),
        ("JPEGs 64 px, whole image (demo before issue 18)", "demo", (NO_CROP, NO_RRC)),
        ("JPEGs 64 px (the demo as shipped)", "demo", ()),
        ("PneumoniaMNIST 64 px (28 px upsampled)", "pmnist28", (*PMNIST_DEMO, "data.image_size=64")),
    ],
    # The demo's recipe elements one at a time, on the closest JPEG variant of PneumoniaMNIST (28 px, centre crop).
    "demo-recipe": [
        ("JPEGs 28 px, centre crop (reference)", "demo", ("data.image_size=28", NO_RRC)),
        ("+ resized crops [0.6, 1]", "demo", ("data.image_size=28",)),
        ("+ resized crops [0.35, 1]", "demo", ("data.image_size=28", "train.augment.resized_crop=[0.35, 1.0]")),
        ("+ 16 epochs", "demo", ("data.image_size=28", NO_RRC, "train.epochs=16")),
        ("+ mixup 0.2", "demo", ("data.image_size=28", NO_RRC, "train.augment.mixup=0.2")),
        ("+ label smoothing 0.1", "demo", ("data.image_size=28", NO_RRC, "train.label_smoothing=0.1")),
        ("+ validation 20 % of the patients", "demo", ("data.image_size=28", NO_RRC, "data.val_fraction=0.2")),
        ("+ dedupe (as PneumoniaMNIST's config)", "demo", ("data.image_size=28", NO_RRC, "audit.dedupe=true")),
        ("+ no EMA", "demo", ("data.image_size=28", NO_RRC, "train.ema_decay=0")),
        ("+ 48 px", "demo", ("data.image_size=48", NO_RRC)),
    ],
}
# Threshold rules compared after training (the same predictions, no retraining): each picks its threshold on val.
THRESHOLD_RULES = (("youden", 0.5), ("fixed", 0.5), ("sensitivity", 0.95), ("sensitivity", 0.9),
                   ("specificity", 0.95))


def overrides_of(bench: Bench, extra: tuple[str, ...], args) -> list[str]:
    """Every override of one run: the benchmark's, the variant's, --quick's and --set's (later ones win)."""
    return [*bench.overrides, *(bench.quick if args.quick else ()), *extra, *args.set]


def config_digest(bench: Bench) -> str:
    """A short digest of the benchmark's config file: a record is reused only while the shipped config is unchanged."""
    return hashlib.sha256((ROOT / bench.config).read_bytes()).hexdigest()[:12]


def run_one(key: str, label: str, extra: tuple[str, ...], args) -> dict:
    """Train and evaluate one benchmark variant; its figures as a flat dict."""
    bench = BENCHES[key]
    overrides = overrides_of(bench, extra, args)
    name = f"{key}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = load_config(ROOT / bench.config, [*overrides, f"name={name}", f"output_dir={args.out}", "train.logger=csv",
                                            "train.progress_bar=false", *(["evaluate.bootstrap=100"] if args.quick
                                                                           else [])])
    t0 = time.perf_counter()
    run = train_run(cfg, data_dir=str(args.data))
    metrics = evaluate_all(run)
    wall = time.perf_counter() - t0
    timing = run.read_json("train_info")["timing"]
    test, val = metrics["splits"]["test"], metrics["splits"]["val"]
    return {"bench": key, "label": label, "overrides": overrides, "config": config_digest(bench), "run": str(run.path),
            "auc": test["auc"], "auc_ci": test.get("auc_ci", [float("nan")] * 2), "acc": test["accuracy"],
            "sens": test["sensitivity"], "spec": test["specificity"], "val_auc": val["auc"],
            "threshold": metrics["threshold"]["value"], "fit_s": timing["fit_seconds"], "wall_s": round(wall, 1),
            "img_s": timing["train_images_per_second"], "epochs": timing["epochs_run"], "load": os.getloadavg()[0]}


def recorded(args) -> list[dict]:
    """The runs already in --record."""
    path = args.record
    if not (path and path.is_file()):
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def result(key: str, label: str, extra: tuple[str, ...], args) -> dict:
    """A variant's figures: read back from --record with --reuse, else trained (and appended to --record)."""
    overrides, digest = overrides_of(BENCHES[key], extra, args), config_digest(BENCHES[key])
    if args.reuse:
        for row in recorded(args):
            if row["bench"] == key and row["overrides"] == overrides and row.get("config") == digest:
                return {**row, "label": label}
    row = run_one(key, label, extra, args)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        with args.record.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(f"  done: {label}: test AUC {row['auc']:.3f}, acc {row['acc']:.3f}, fit {row['fit_s']:.0f} s", flush=True)
    return row


def fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def verdict(bench: Bench, row: dict) -> str:
    """Met / missed for the benchmark's targets, with the margin."""
    parts = []
    if bench.target_auc:
        parts.append(f"AUC {row['auc'] - bench.target_auc:+.3f} vs {bench.target_auc}")
    if bench.target_acc:
        parts.append(f"acc {row['acc'] - bench.target_acc:+.3f} vs {bench.target_acc}")
    if bench.max_fit_seconds:
        parts.append(f"fit {row['fit_s'] - bench.max_fit_seconds:+.0f} s vs {bench.max_fit_seconds:.0f}")
    if not parts:
        return ""
    met = (row["auc"] >= bench.target_auc and row["acc"] >= bench.target_acc
           and (not bench.max_fit_seconds or row["fit_s"] <= bench.max_fit_seconds))
    return f"target {'MET' if met else 'MISSED'}: {', '.join(parts)}"


HEAD = (f"{'':<34}{'test AUC [95% CI]':<22}{'acc':>7}{'sens':>7}{'spec':>7}{'fit s':>8}{'wall s':>8}{'img/s':>7}"
        f"{'load':>6}")


def print_table(rows: list[dict]) -> None:
    """The benchmark table: medfit's row, then the anchors, then the target verdict."""
    print(HEAD)
    print("-" * len(HEAD))
    for row in rows:
        bench = BENCHES[row["bench"]]
        lo, hi = row["auc_ci"]
        print(f"{'medfit: ' + bench.title:<34}{row['auc']:.3f} [{lo:.3f}-{hi:.3f}]{'':<5}{row['acc']:>7.3f}"
              f"{row['sens']:>7.3f}{row['spec']:>7.3f}{row['fit_s']:>8.0f}{row['wall_s']:>8.0f}{row['img_s']:>7.0f}"
              f"{row['load']:>6.1f}")
        for a in bench.anchors:
            print(f"{'  ' + a.source:<34}{a.auc:<22.3f}{a.acc:>7.3f}{fmt(a.sens):>7}{fmt(a.spec):>7}")
        if verdict(bench, row):
            print(f"  {verdict(bench, row)}")


def print_ablation(rows: list[dict]) -> None:
    """Each variant's figures and their differences against the first row."""
    ref = rows[0]
    head = f"{'variant':<44}{'val AUC':>8}{'AUC':>7}{'dAUC':>7}{'acc':>7}{'dacc':>7}{'sens':>7}{'spec':>7}{'fit s':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['label'][:43]:<44}{r['val_auc']:>8.3f}{r['auc']:>7.3f}{r['auc'] - ref['auc']:>+7.3f}"
              f"{r['acc']:>7.3f}{r['acc'] - ref['acc']:>+7.3f}{r['sens']:>7.3f}{r['spec']:>7.3f}{r['fit_s']:>7.0f}")


def threshold_rows(row: dict) -> list[tuple[str, dict]]:
    """Test accuracy/sensitivity/specificity of one recorded run at the threshold each rule picks on val."""
    table = pd.read_csv(RunFolder(Path(row["run"])).file("predictions"))
    val, test = table[table["split"] == "val"], table[table["split"] == "test"]
    out = []
    for method, value in THRESHOLD_RULES:
        t = choose_threshold(val["label"].to_numpy(), val["prob"].to_numpy(), method, value)
        name = method if method == "youden" else f"{method} {value:g}"
        out.append((name, {"threshold": t, **binary_metrics(test["label"].to_numpy(), test["prob"].to_numpy(), t)}))
    return out


def print_thresholds(rows: list[dict]) -> None:
    """For each run: test figures at the threshold of each rule (chosen on val; the AUC does not change)."""
    print(f"{'variant':<44}{'rule':<18}{'thr':>7}{'acc':>7}{'sens':>7}{'spec':>7}")
    for r in rows:
        for name, m in threshold_rows(r):
            print(f"{r['label'][:43]:<44}{name:<18}{m['threshold']:>7.3f}{m['accuracy']:>7.3f}{m['sensitivity']:>7.3f}"
                  f"{m['specificity']:>7.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(BENCHES), help=f"comma list of {', '.join(BENCHES)}")
    p.add_argument("--ablation", choices=sorted(ABLATIONS), help="train an ablation set instead of the benchmarks")
    p.add_argument("--rows", help="with --ablation: only these rows (comma list of indices; the table needs all)")
    p.add_argument("--quick", action="store_true", help="CI-sized smoke run (few images, 1 epoch): figures mean little")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys in every run")
    p.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    p.add_argument("--out", type=Path, default=None, help="run folder parent (default: a temporary folder)")
    p.add_argument("--record", type=Path, help="append each finished run to this JSON-lines file")
    p.add_argument("--reuse", action="store_true", help="read runs already in --record back instead of training")
    p.add_argument("--thresholds", action="store_true", help="also print test figures under other threshold rules")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} not found")
        return 0
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="bench-quality-"))).resolve()
    if args.ablation:
        variants = ABLATIONS[args.ablation]
        if args.rows:
            for i in map(int, args.rows.split(",")):
                result(variants[i][1], variants[i][0], tuple(variants[i][2]), args)
            return 0
        rows = [result(key, label, tuple(extra), args) for label, key, extra in variants]
        print(f"\nablation {args.ablation}{' (quick)' if args.quick else ''}: test figures at the validation threshold")
        print_ablation(rows)
        if args.thresholds:
            print_thresholds(rows)
        return 0
    rows = [result(key, BENCHES[key].title, (), args) for key in args.only.split(",")]
    print(f"\nmedfit quality benchmark{' (quick: figures mean little)' if args.quick else ''}, "
          f"{os.cpu_count()} CPUs, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print_table(rows)
    if args.thresholds:
        print_thresholds(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
