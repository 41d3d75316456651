"""Where the shard of a dataset's prepared inputs lives: ``<cache dir>/shards/<key>.npy``, the key naming the content
of every row (as the cache entries' keys do), the recipe, the input layout and the medfit version."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

import medfit
from medfit.data.rows import Row
from medfit.preprocess.prepared import prepared_key
from medfit.preprocess.recipe import Recipe


def shard_key(table: pd.DataFrame, recipe: Recipe, layout: dict) -> str:
    """A key for the prepared inputs of ``table``'s rows, in order: each row's content key, the recipe, and
    ``layout`` (what else shapes an input: study sampling, dtype)."""
    h = hashlib.sha256(json.dumps({"recipe": recipe.params, "layout": layout, "medfit": medfit.__version__},
                                  sort_keys=True, default=str).encode())
    for _, row in table.iterrows():
        h.update(prepared_key(Row.of(row), recipe).encode())
    return h.hexdigest()


def shard_path(cache_dir: str | Path, table: pd.DataFrame, recipe: Recipe, layout: dict, dtype) -> Path:
    """The shard file of ``table``'s rows."""
    return Path(cache_dir) / "shards" / f"{shard_key(table, recipe, {**layout, 'dtype': np.dtype(dtype).str})}.npy"
