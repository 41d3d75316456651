"""Preprocess every image of an experiment's manifest into the cache ahead of training."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit preprocess``."""
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--data", help="base folder for relative data paths (else $MEDFIT_DATA, else ../shared/data)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. preprocess.recipe=radiograph")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit preprocess``: fill the cache for every manifest row, report counts and time."""
    from tqdm.auto import tqdm

    from medfit.config import load_config
    from medfit.data.manifest import build_manifest, resolve_data_dir, resolve_root
    from medfit.data.volumes import StudyLoader, study_manifest, uses_studies
    from medfit.errors import DataError
    from medfit.preprocess import cache_dir_for, load_prepared_row, resolve_ops

    cfg = load_config(args.config, args.set)
    ops = resolve_ops(cfg.preprocess.recipe, cfg.preprocess.ops)
    # the rows `medfit train` reads (key slices and their neighbours for study configs), so every entry is a hit later
    manifest = study_manifest(build_manifest(cfg, args.data), cfg)
    studies = StudyLoader(cfg) if uses_studies(manifest, cfg) else None
    root = resolve_root(cfg.data, resolve_data_dir(cfg.data, args.data))
    base = root.parent if root.is_file() else root
    cache_dir = cache_dir_for(cfg)
    before = sum(1 for _ in cache_dir.rglob("*.npz")) if cache_dir.is_dir() else 0
    skipped: list[str] = []
    start = time.perf_counter()
    rows = [row for _, row in manifest.df.iterrows()]
    for row in tqdm(rows, desc="preprocess", leave=False):
        try:
            if studies is not None:
                studies.study(row)  # the training dataset's own reading path and cache keys
            else:
                load_prepared_row(row, cfg, base)
        except DataError as exc:
            if cfg.preprocess.on_bad_file != "skip":
                raise
            log.warning("skipped: %s", exc)
            skipped.append(f"{row['image']}: {exc}")
    elapsed = time.perf_counter() - start
    after = sum(1 for _ in cache_dir.rglob("*.npz")) if cache_dir.is_dir() else 0
    record = {"recipe": cfg.preprocess.recipe, "ops": ops, "image_size": cfg.data.image_size,
              "channels": cfg.data.channels, "rows": len(rows), "new_entries": after - before,
              "skipped": skipped, "seconds": round(elapsed, 2)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "preprocess.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"preprocessed {len(rows) - len(skipped)} of {len(rows)} images in {elapsed:.1f} s "
          f"({after - before} new cache entries, {len(skipped)} skipped) -> {cache_dir}")
    if not ops:
        print("note: no recipe or ops, so plain images are read directly and not cached (that is as fast)")
    return 0
