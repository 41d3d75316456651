"""The datasets training, prediction and the VLM read: every row prepared once by the experiment's recipe."""
from __future__ import annotations

import numpy as np

from medfit.config import ExperimentConfig
from medfit.data.covariates import encode_covariates
from medfit.data.datasets import PreparedDataset
from medfit.data.manifest import Manifest
from medfit.preprocess.study import input_loader


def dataset_for(manifest: Manifest, cfg: ExperimentConfig, progress: bool = True,
                desc: str = "loading", covariates: dict | None = None) -> PreparedDataset:
    """The prepared inputs of a manifest (studies as float16, plain images as float32), held in memory; with a
    fitted covariate encoder, each item's input is (image, encoded covariates)."""
    load, studies = input_loader(cfg, manifest.df)
    encoded = encode_covariates(manifest.df, covariates) if covariates else None
    return PreparedDataset(manifest, load, progress, desc, np.float16 if studies else np.float32, encoded)
