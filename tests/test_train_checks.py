"""Before and while a classifier trains: the monitored metric's direction (D6), undefined validation AUCs (D10),
fine-tuning methods that assume pretrained weights on random init (D9), the logger values."""
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from medfit.commands.pipeline import finish_run, prepare_run
from medfit.config import config_from_dict, updated
from medfit.errors import ConfigError, DataError
from medfit.models.checkpoint import read_checkpoint
from medfit.run_folder import RunFolder
from medfit.task import Task
from medfit.train.engine import build_trainer, make_loggers
from medfit.train.fit import fit, predict_run

torch.set_num_threads(1)
NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def small_config(shared_data, tmp_path, **train):
    """resnet10t at 28 px on 40 PneumoniaMNIST images per split, CSV log only."""
    return config_from_dict({
        "name": "checks", "seed": 0, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "limit_per_split": 40},
        "model": {"name": "resnet10t"},
        "train": {"epochs": 1, "batch_size": 20, "logger": "csv", "progress_bar": False, **train},
        "evaluate": {"bootstrap": 20}, "audit": {"enabled": False},
    })


def epoch_log(run: RunFolder) -> pd.DataFrame:
    """One row per epoch of the CSV training log."""
    return pd.read_csv(run.file("training_log")).groupby("epoch").last()


def test_monitor_val_loss_keeps_the_epoch_with_the_lowest_loss(shared_data, tmp_path, caplog):
    """D6: checkpointing used mode='max' whatever the monitor, so val_loss kept the worst epoch. D9: a linear probe on
    random weights trained without a word."""
    cfg = small_config(shared_data, tmp_path, epochs=3, monitor="val_loss", optim={"lr": 0.05})
    cfg = updated(cfg, {"model.finetune": "linear"})
    run, manifest, cfg = prepare_run(cfg)
    with caplog.at_level(logging.WARNING, logger="medfit"):
        result = fit(cfg, run, manifest)
    losses = epoch_log(run)["val_loss"].dropna()
    assert len(losses) == 3 and losses.nunique() == 3
    best = read_checkpoint(run.checkpoint("best"))
    assert best["epoch"] == int(losses.idxmin()), losses
    # D9: one warning line, recorded for the report
    lines = [r.getMessage() for r in caplog.records if "random" in r.getMessage()]
    assert len(lines) == 1 and "model.finetune: linear" in lines[0] and "\n" not in lines[0]
    assert result.info["warnings"] == lines
    (norm,) = result.info["input_normalisation"]  # D8: a random network has no normalisation, and says so
    assert norm["source"].startswith("none: random init") and "mean" not in norm
    predict_run(result, cfg, manifest, run)
    finish_run(run)
    assert "model.finetune: linear" in run.file("report").read_text()


def test_early_stopping_follows_the_monitors_direction(tmp_path):
    cfg = config_from_dict({"output_dir": str(tmp_path), "train": {"monitor": "val_loss", "early_stopping_patience": 2,
                                                                   "logger": "csv"}})
    stop = [c for c in build_trainer(cfg, RunFolder(tmp_path / "r"), []).callbacks if isinstance(c, EarlyStopping)]
    assert len(stop) == 1 and stop[0].monitor == "val_loss" and stop[0].mode == "min"
    cfg = updated(cfg, {"train.monitor": "val_auc"})
    stop = [c for c in build_trainer(cfg, RunFolder(tmp_path / "r"), []).callbacks if isinstance(c, EarlyStopping)]
    assert stop[0].mode == "max"


def test_monitor_must_name_a_logged_metric():
    with pytest.raises(ConfigError, match="train.monitor") as err:
        config_from_dict({"train": {"monitor": "val_accuracy"}})
    assert "val_auc" in str(err.value) and "val_loss" in str(err.value) and "\n" not in str(err.value)


def one_class_val(cfg):
    """The run's manifest with only the negative class left in val."""
    run, manifest, cfg = prepare_run(cfg)
    df = manifest.df
    return run, manifest.with_df(df[(df["split"] != "val") | (df["label"] == 0)]), cfg


def test_one_class_validation_is_refused_before_training_when_monitoring_auc(shared_data, tmp_path):
    """D10: a one-class val split gave AUC NaN, logged as 0.0, and the first epoch's weights were kept silently."""
    run, manifest, cfg = one_class_val(small_config(shared_data, tmp_path))
    with pytest.raises(DataError, match="val") as err:
        fit(cfg, run, manifest)
    message = str(err.value)
    assert "\n" not in message and "one class" in message and "train.monitor: val_loss" in message
    assert not run.checkpoint("last").exists()  # refused before any training


def test_undefined_validation_auc_is_logged_as_nan_not_zero(shared_data, tmp_path):
    """D10: with val_loss monitored, a one-class val split trains, and its AUC is logged as missing, never 0.0."""
    run, manifest, cfg = one_class_val(small_config(shared_data, tmp_path, monitor="val_loss"))
    fit(cfg, run, manifest)
    auc = epoch_log(run)["val_auc"]
    assert len(auc) == 1 and auc.isna().all(), auc


@pytest.mark.parametrize("kind,labels,defined", [
    ("binary", [0, 0, 0], False), ("binary", [0, 1, 0], True),
    ("multiclass", [0, 1, 1], False), ("multiclass", [0, 1, 2], True),
    ("multilabel", [[0, 1], [1, 1]], False), ("multilabel", [[0, 1], [1, 0]], True),
])
def test_auc_defined(kind, labels, defined):
    task = Task(kind, ("a", "b", "c") if kind == "multiclass" else (), ("x", "y") if kind == "multilabel" else ("label",))
    assert task.auc_defined(np.array(labels)) is defined


@pytest.mark.parametrize("logger", ["csv", "none"])
def test_logger_values_keep_the_csv_log_the_report_reads(tmp_path, logger):
    """train.logger none and csv both mean: no MLflow; the CSV log is always written (the report's training curve)."""
    cfg = config_from_dict({"output_dir": str(tmp_path), "train": {"logger": logger}})
    names = [type(lg).__name__ for lg in make_loggers(cfg, RunFolder(tmp_path / "r"))]
    assert names == ["HistoryLogger"]  # medfit's atomic CSV history (mlflow adds MLFlowLogger; importing mlflow takes ~20 s, so not here)
