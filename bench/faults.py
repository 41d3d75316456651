"""kill -9 at random points of a short `medfit train` run, resume, and compare with an uninterrupted run.

Each trial starts `medfit train` in a forked process (medfit already imported, so the process starts in
milliseconds), kills it with SIGKILL at a time drawn uniformly over the uninterrupted run's duration (so kills land
in the manifest, the audit, any epoch, a checkpoint write, prediction or the report), repeats that ``--kills`` times,
then lets `medfit train --resume` (or a fresh start when no checkpoint was written yet) finish. A trial is
*identical* when its last checkpoint's weights, its logs/metrics.csv and its predictions.csv equal the
uninterrupted run's exactly; it *lost history* when any line of the uninterrupted run's metrics.csv is missing.

    python bench/faults.py [--runs 6] [--kills 2] [--epochs 4] [--seed 0]

Measured on the shared 2-core CPU machine under load (PneumoniaMNIST, 64 images per split, 28 px, resnet10t,
4 epochs, 8 history lines; the uninterrupted run took 38 s here, 89 s in the second measurement):
  this branch:          6 runs x 2 kills (at 9.9-34.7 s) -> 6/6 identical, 0/6 lost any history line
  before it (ca4c84f):  3 runs x 2 kills -> 0/3 identical, 3/3 lost history lines (8, 2 and 2 of 8 lines)
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (torchvision import hook)
import pandas as pd
import torch

from medfit.cli import main
from medfit.models.checkpoint import read_checkpoint
from medfit.run_folder import RunFolder

SHARED = Path(os.environ.get("MEDFIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
DATA = SHARED / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz"
FORK = multiprocessing.get_context("fork")


def write_config(folder: Path, epochs: int) -> Path:
    cfg = folder / "faults.yaml"
    cfg.write_text(f"""
name: ref
seed: 7
output_dir: {folder / 'runs'}
data: {{source: medmnist, root: {DATA}, image_size: 28, limit_per_split: 64}}
model: {{name: resnet10t, drop_rate: 0.2}}
train: {{epochs: {epochs}, batch_size: 32, logger: csv, progress_bar: false}}
evaluate: {{bootstrap: 50}}
audit: {{dedupe: true, near_duplicates: false}}
""")
    return cfg


def _quiet_main(argv: list[str]) -> None:
    sys.stdout = sys.stderr = open(os.devnull, "w")  # the child's lines would bury the bench's own
    os._exit(main(argv))


def start(argv: list[str]) -> multiprocessing.Process:
    proc = FORK.Process(target=_quiet_main, args=(argv,))
    proc.start()
    return proc


def train_once(cfg: Path, name: str, resume: bool) -> multiprocessing.Process:
    return start(["train", str(cfg), "--name", name, *(["--resume"] if resume else [])])


def finish(cfg: Path, run: RunFolder, name: str) -> int:
    proc = train_once(cfg, name, resume=run.has_checkpoint)
    proc.join()
    return proc.exitcode


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def state(run: RunFolder) -> dict:
    """What must match the uninterrupted run: last weights, the history, the predictions (a missing file: empty)."""
    weights = read_checkpoint(run.checkpoint("last"))["state_dict"] if run.has_checkpoint else {}
    return {"weights": weights, "history": _table(run.file("training_log")),
            "predictions": _table(run.file("predictions"))}


def same(a: dict, b: dict) -> bool:
    weights = a["weights"].keys() == b["weights"].keys() and all(torch.equal(a["weights"][k], b["weights"][k])
                                                                 for k in a["weights"])
    return weights and a["history"].equals(b["history"]) and a["predictions"].equals(b["predictions"])


def lost_lines(reference: pd.DataFrame, history: pd.DataFrame) -> int:
    """Lines of the reference history missing from a resumed run's history."""
    key = lambda df: set(map(tuple, df.astype(str).itertuples(index=False)))  # noqa: E731
    return len(key(reference) - key(history))


def trial(cfg: Path, folder: Path, name: str, kills: int, duration: float, rng: random.Random) -> dict:
    """Kill a run ``kills`` times at random points, then let it finish; returns the kill times and exit codes."""
    run, times = RunFolder(folder / "runs" / name), []
    for _ in range(kills):
        proc = train_once(cfg, name, resume=run.has_checkpoint)
        delay = rng.uniform(0.0, duration)
        proc.join(delay)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
            times.append(round(delay, 1))
    return {"kills": times, "exit": finish(cfg, run, name)}


def main_bench(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per run before it may finish")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg = write_config(folder, args.epochs)
        t0 = time.perf_counter()
        ref_proc = train_once(cfg, "ref", resume=False)
        ref_proc.join()
        duration = time.perf_counter() - t0
        assert ref_proc.exitcode == 0, "the uninterrupted run failed"
        reference = state(RunFolder(folder / "runs" / "ref"))
        print(f"uninterrupted run: {duration:.1f} s, {len(reference['history'])} history lines")
        identical = lost = 0
        for i in range(args.runs):
            name = f"killed{i}"
            out = trial(cfg, folder, name, args.kills, duration, rng)
            got = state(RunFolder(folder / "runs" / name)) if out["exit"] == 0 else None
            ok = got is not None and same(reference, got)
            missing = lost_lines(reference["history"], got["history"]) if got is not None else len(reference["history"])
            identical += ok
            lost += missing > 0
            print(f"run {i}: killed at {out['kills']} s, final exit {out['exit']}, identical {ok}, "
                  f"history lines lost {missing}")
        print(f"{args.runs} runs x {args.kills} kills: {identical}/{args.runs} identical to the uninterrupted run, "
              f"{lost}/{args.runs} lost any history line")
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
