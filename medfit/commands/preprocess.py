"""Preprocess every image of an experiment's manifest into the cache ahead of training."""
from __future__ import annotations

import argparse
import functools
import logging
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from medfit.commands.common import add_cluster_arguments, add_config_arguments, load_experiment
from medfit.audit import split_grouper
from medfit.data.manifest import build_manifest
from medfit.errors import DataError
from medfit.preprocess import Recipe, cache_dir_for
from medfit.preprocess.cluster import Cluster, cluster_for
from medfit.preprocess.study import input_loader, study_rows
from medfit.run_folder import write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit preprocess``."""
    add_config_arguments(parser)
    add_cluster_arguments(parser)


def fill_serially(rows: list, load: Callable, on_bad_file: str) -> list[str]:
    """Prepare every row in this process; the rows skipped (``preprocess.on_bad_file: skip``) as lines."""
    skipped: list[str] = []
    for row in tqdm(rows, desc="preprocess", leave=False):
        try:
            load(row)
        except DataError as exc:
            if on_bad_file != "skip":
                raise
            log.warning("skipped: %s", exc)
            skipped.append(f"{row['image']}: {exc}")
    return skipped


def _fill_file(load: Callable, rows: list) -> int:
    """One task: every row of one image file (a volume's slices share its reading and volume ops)."""
    for row in rows:
        load(row)
    return len(rows)


def fill_on_cluster(cluster: Cluster, rows: list, load: Callable, on_bad_file: str) -> list[str]:
    """Prepare every row on the Dask cluster, one task per image file; a file that fails every try is skipped
    (``on_bad_file: skip`` and a DataError) or named in the error."""
    files: dict[str, list] = {}
    for row in rows:
        files.setdefault(str(row["image"]), []).append(row)
    _, failures = cluster.map(functools.partial(_fill_file, load), list(files.values()), list(files),
                              desc="preprocess")
    if failures and (on_bad_file != "skip" or not all(f.data_error for f in failures)):
        raise DataError(f"preprocess: {cluster.failures_line(failures, len(files))}; fix or drop them "
                        "(preprocess.on_bad_file: skip drops unreadable files)")
    return [f"{f.name}: {f.message}" for f in failures for _ in files[f.name]]  # a line per row, as serially


def run(args: argparse.Namespace) -> int:
    """Run ``medfit preprocess``: fill the cache for every manifest row, report counts and time."""
    cfg = load_experiment(args)
    recipe = Recipe.of_experiment(cfg)
    # the rows `medfit train` reads (key slices and their neighbours for study configs), so every entry is a hit later
    # drawn as training draws its splits (around duplicate groups), so limit_per_split picks the same images
    manifest = study_rows(build_manifest(cfg, args.data, split_grouper(cfg)), cfg)
    load, _ = input_loader(cfg, manifest.df)  # the training dataset's own reading path and cache keys
    cache_dir = cache_dir_for(cfg)
    before = sum(1 for _ in cache_dir.rglob("*.npz")) if cache_dir.is_dir() else 0
    start = time.perf_counter()
    rows = [row for _, row in manifest.df.iterrows()]
    cluster = cluster_for(args.workers, args.cluster)
    if cluster is None:
        skipped = fill_serially(rows, load, cfg.preprocess.on_bad_file)
    else:
        with cluster:
            skipped = fill_on_cluster(cluster, rows, load, cfg.preprocess.on_bad_file)
    elapsed = time.perf_counter() - start
    after = sum(1 for _ in cache_dir.rglob("*.npz")) if cache_dir.is_dir() else 0
    record = {"recipe": cfg.preprocess.recipe, "ops": list(recipe.ops), "digest": recipe.digest,
              "image_size": recipe.image_size, "channels": recipe.channels, "rows": len(rows),
              "new_entries": after - before, "skipped": skipped, "workers": args.workers,
              "cluster": args.cluster or "", "seconds": round(elapsed, 2)}
    write_json(cache_dir / "preprocess.json", record)
    print(f"preprocessed {len(rows) - len(skipped)} of {len(rows)} images in {elapsed:.1f} s "
          f"({after - before} new cache entries, {len(skipped)} skipped) -> {cache_dir}")
    if not recipe.ops:
        print("note: no recipe or ops, so plain images are read directly and not cached (that is as fast)")
    return 0
