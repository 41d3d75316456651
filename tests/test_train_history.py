"""No lost history: last.ckpt is the end of the last completed epoch, --resume keeps every logged line and continues
from the real last epoch, Ctrl-C says how to resume, and a damaged or code-carrying last.ckpt is refused."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import medfit.commands.pipeline as pipeline
from medfit.commands.pipeline import train_run
from medfit.config import config_from_dict, updated
from medfit.errors import MedfitError
from medfit.models.checkpoint import read_checkpoint
from medfit.run_folder import RunFolder

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def tiny(shared_data, tmp_path, name="h", **train):
    return config_from_dict({
        "name": name, "seed": 3, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "limit_per_split": 64},
        "model": {"name": "resnet10t", "drop_rate": 0.2},
        "train": {"epochs": 3, "batch_size": 32, "logger": "csv", "progress_bar": False, **train},
        "evaluate": {"bootstrap": 20}, "audit": {"dedupe": True, "near_duplicates": False}})


def run_of(cfg) -> RunFolder:
    return RunFolder.of(cfg.output_dir, cfg.name)


class DecliningAUC(Callback):
    """The validation AUC peaks in the first epoch (as in a run that overfits): only epoch 0 is ever 'best'."""

    def on_validation_end(self, trainer, pl_module):  # runs before ModelCheckpoint (Lightning orders those last)
        trainer.callback_metrics["val_auc"] = torch.tensor(0.9 - 0.1 * trainer.current_epoch)


class RecordEpochs(Callback):
    def __init__(self):
        self.epochs = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs.append(trainer.current_epoch)


class FailAtValidationEnd(Callback):
    """Dies after epoch ``epoch``'s validation lines are logged but before its checkpoint is written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_validation_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def history(run: RunFolder) -> pd.DataFrame:
    return pd.read_csv(run.file("training_log"))


def test_last_checkpoint_is_the_last_epoch_and_more_epochs_continue_from_it(shared_data, tmp_path):
    cfg = tiny(shared_data, tmp_path)
    run = train_run(cfg, callbacks=[DecliningAUC()])
    assert read_checkpoint(run.checkpoint("best"))["epoch"] == 0
    assert read_checkpoint(run.checkpoint("last"))["epoch"] == 2  # the end of the last epoch, not of the best one
    first = history(run)
    record = RecordEpochs()
    train_run(updated(cfg, {"train.epochs": 4}), resume=True, callbacks=[DecliningAUC(), record])
    assert record.epochs == [3]  # epochs 0-2 are not trained again
    log = history(run)
    assert pd.testing.assert_frame_equal(log.iloc[:len(first)], first) is None  # the first three epochs kept as logged
    assert sorted(log.dropna(subset=["val_auc"])["epoch"]) == [0, 1, 2, 3]
    assert sorted(log.dropna(subset=["train_loss"])["epoch"]) == [0, 1, 2, 3]
    assert read_checkpoint(run.checkpoint("last"))["epoch"] == 3


def test_a_crashed_run_resumed_keeps_every_history_line_and_ends_identical(shared_data, tmp_path):
    full = train_run(tiny(shared_data, tmp_path / "full"))
    cfg = tiny(shared_data, tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_run(cfg, callbacks=[FailAtValidationEnd(epoch=2)])
    assert read_checkpoint(run_of(cfg).checkpoint("last"))["epoch"] == 1
    resumed = train_run(cfg, resume=True)
    pd.testing.assert_frame_equal(history(resumed), history(full))
    a, b = (read_checkpoint(r.checkpoint("last"))["state_dict"] for r in (full, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_during_training_says_how_to_resume_and_keeps_the_checkpoint(shared_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
name: c
output_dir: {tmp_path / 'runs'}
data: {{source: medmnist, root: {shared_data / NPZ}, image_size: 28, limit_per_split: 64}}
model: {{name: resnet10t}}
train: {{epochs: 200, batch_size: 32, logger: csv, progress_bar: false}}
evaluate: {{bootstrap: 20}}
audit: {{dedupe: true, near_duplicates: false}}
""")
    last = tmp_path / "runs" / "c" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "medfit.cli", "train", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not last.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.is_file(), proc.communicate()[1][-2000:]
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("interrupted; resume with --resume")
    assert "Traceback" not in err
    assert read_checkpoint(last)["epoch"] < 199  # kept, readable, from a completed epoch


class Payload:
    """Pickles as a call that leaves a marker file: what a hostile checkpoint would run on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "payload", "weights_only_file"])
def test_resume_refuses_a_damaged_or_code_carrying_last_checkpoint_before_the_audit(shared_data, tmp_path, monkeypatch,
                                                                                     damage):
    cfg = tiny(shared_data, tmp_path, epochs=1)
    last = run_of(cfg).checkpoint("last")
    last.parent.mkdir(parents=True)
    marker = tmp_path / "ran"
    good = {"state_dict": {"model.w": torch.zeros(2)}, "epoch": 0, "global_step": 2, "loops": {},
            "optimizer_states": []}
    if damage == "garbage":
        last.write_bytes(os.urandom(3000))
    elif damage == "truncated":
        torch.save(good, last)
        last.write_bytes(last.read_bytes()[:400])
    elif damage == "payload":
        torch.save({**good, "hyper_parameters": Payload(marker)}, last)
    else:
        torch.save({"state_dict": good["state_dict"]}, last)
    monkeypatch.setattr(pipeline, "run_audit", lambda *a, **k: pytest.fail("the audit ran before the check"))
    with pytest.raises(MedfitError) as info:
        train_run(cfg, resume=True)
    message = str(info.value)
    assert message.startswith(str(last)) and "\n" not in message
    assert not marker.exists()
