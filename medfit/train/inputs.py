"""The datasets training, prediction and the VLM read: every row prepared once by the experiment's recipe, held in
memory or (``data.storage``) streamed from a shard in the cache."""
from __future__ import annotations

import dataclasses

import numpy as np

from medfit.config import ExperimentConfig
from medfit.data.covariates import encode_covariates
from medfit.data.datasets import PreparedDataset
from medfit.data.manifest import Manifest
from medfit.data.streamed import StreamedDataset, shard_is_complete, storage_for, write_shard
from medfit.preprocess import Recipe, cache_dir_for
from medfit.preprocess.shards import shard_path
from medfit.preprocess.study import input_loader


def dataset_for(manifest: Manifest, cfg: ExperimentConfig, progress: bool = True,
                desc: str = "loading", covariates: dict | None = None) -> PreparedDataset | StreamedDataset:
    """The prepared inputs of a manifest (studies as float16, plain images as float32), held in memory or streamed
    (``data.storage``); with a fitted covariate encoder, each item's input is (image, encoded covariates)."""
    load, studies = input_loader(cfg, manifest.df)
    encoded = encode_covariates(manifest.df, covariates) if covariates else None
    dtype = np.float16 if studies else np.float32
    rows = [row for _, row in manifest.df.iterrows()]
    if not rows or cfg.data.storage == "memory":
        return PreparedDataset(manifest, load, progress, desc, dtype, encoded)
    first = load(rows[0])
    if storage_for(cfg.data.storage, cfg.data.memory_limit_gb, len(rows), first.shape, dtype) == "memory":
        return PreparedDataset(manifest, load, progress, desc, dtype, encoded)
    layout = {"studies": studies, "volume": dataclasses.asdict(cfg.volume) if studies else None}
    path = shard_path(cache_dir_for(cfg), manifest.df, Recipe.of_experiment(cfg), layout, dtype)
    if not shard_is_complete(path, len(rows), first.shape, dtype):
        write_shard(path, rows, load, dtype, first, progress, f"{desc} (writing shard)")
    return StreamedDataset(manifest, path, encoded)
