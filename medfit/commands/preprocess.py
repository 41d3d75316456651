"""Preprocess every image of an experiment's manifest into the cache ahead of training."""
from __future__ import annotations

import argparse
import logging
import time

from tqdm.auto import tqdm

from medfit.commands.common import add_config_arguments, load_experiment
from medfit.data.manifest import build_manifest
from medfit.errors import DataError
from medfit.preprocess import Recipe, cache_dir_for
from medfit.preprocess.study import input_loader, study_rows
from medfit.run_folder import write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit preprocess``."""
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``medfit preprocess``: fill the cache for every manifest row, report counts and time."""
    cfg = load_experiment(args)
    recipe = Recipe.of_experiment(cfg)
    # the rows `medfit train` reads (key slices and their neighbours for study configs), so every entry is a hit later
    manifest = study_rows(build_manifest(cfg, args.data), cfg)
    load, _ = input_loader(cfg, manifest.df)  # the training dataset's own reading path and cache keys
    cache_dir = cache_dir_for(cfg)
    before = sum(1 for _ in cache_dir.rglob("*.npz")) if cache_dir.is_dir() else 0
    skipped: list[str] = []
    start = time.perf_counter()
    rows = [row for _, row in manifest.df.iterrows()]
    for row in tqdm(rows, desc="preprocess", leave=False):
        try:
            load(row)
        except DataError as exc:
            if cfg.preprocess.on_bad_file != "skip":
                raise
            log.warning("skipped: %s", exc)
            skipped.append(f"{row['image']}: {exc}")
    elapsed = time.perf_counter() - start
    after = sum(1 for _ in cache_dir.rglob("*.npz")) if cache_dir.is_dir() else 0
    record = {"recipe": cfg.preprocess.recipe, "ops": list(recipe.ops), "digest": recipe.digest,
              "image_size": recipe.image_size, "channels": recipe.channels, "rows": len(rows),
              "new_entries": after - before, "skipped": skipped, "seconds": round(elapsed, 2)}
    write_json(cache_dir / "preprocess.json", record)
    print(f"preprocessed {len(rows) - len(skipped)} of {len(rows)} images in {elapsed:.1f} s "
          f"({after - before} new cache entries, {len(skipped)} skipped) -> {cache_dir}")
    if not recipe.ops:
        print("note: no recipe or ops, so plain images are read directly and not cached (that is as fast)")
    return 0
