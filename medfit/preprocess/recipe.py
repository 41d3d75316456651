"""A Recipe: the resolved preprocessing of one experiment (ops, output geometry, reading options, cache), a value."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from medfit.config import ExperimentConfig, PreprocessConfig
from medfit.preprocess.recipes import output_scale, resolve_ops


@dataclass(frozen=True)
class Recipe:
    """Everything that shapes a prepared image, resolved once per dataset (not per image)."""

    ops: tuple[dict, ...] = ()
    image_size: int = 64
    channels: int = 1
    resize: str = "stretch"
    irregular_series: str = "resample"
    on_bad_file: str = "error"
    cache_dir: str = ""  # empty: no disk cache

    @classmethod
    def of(cls, pre: PreprocessConfig, image_size: int, channels: int, cache_dir: str | Path | None = None) -> "Recipe":
        """The recipe of a preprocess section at an output geometry (``cache_dir`` None: ``pre.cache_dir``)."""
        return cls(tuple(resolve_ops(pre.recipe, pre.ops)), int(image_size), int(channels), pre.resize,
                   pre.irregular_series, pre.on_bad_file, str(pre.cache_dir if cache_dir is None else cache_dir))

    @classmethod
    def of_experiment(cls, cfg: ExperimentConfig) -> "Recipe":
        """The recipe an experiment trains with, cached in ``preprocess.cache_dir`` or ``<output_dir>/.cache``."""
        return cls.of(cfg.preprocess, cfg.data.image_size, cfg.data.channels, cache_dir_for(cfg))

    @property
    def params(self) -> dict:
        """The parameters that shape the result (what the cache key hashes besides the source)."""
        return {"ops": list(self.ops), "image_size": self.image_size, "channels": self.channels,
                "resize": self.resize, "irregular_series": self.irregular_series}

    @property
    def digest(self) -> str:
        """A short hash of ``params``: two recipes with one digest prepare identical images."""
        return hashlib.sha256(json.dumps(self.params, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def standardised(self) -> bool:
        """True when the recipe ends in z-scores: images keep them (no [0, 1] scaling or clipping afterwards)."""
        return output_scale(list(self.ops)) == "zscore"

    def with_channels(self, channels: int) -> "Recipe":
        """The same recipe giving another number of channels (study slices are read one channel at a time)."""
        return dataclasses.replace(self, channels=int(channels))


def cache_dir_for(cfg: ExperimentConfig) -> Path:
    """The cache folder of an experiment: ``preprocess.cache_dir``, else ``<output_dir>/.cache``."""
    return Path(cfg.preprocess.cache_dir or Path(cfg.output_dir) / ".cache")
