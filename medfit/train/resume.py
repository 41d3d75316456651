"""Resumable fits: the last checkpoint at the end of every completed epoch, the checkpoint checked before Lightning loads it, and
Ctrl-C turned back into KeyboardInterrupt."""
from __future__ import annotations

import signal

import lightning as L
from lightning.pytorch.callbacks import Callback

from medfit.models.checkpoint import read_training_checkpoint
from medfit.run_folder import RunFolder


class LastEpochCheckpoint(Callback):
    """The last checkpoint whenever an epoch is wholly done (its lines logged, its schedule stepped): at the start of
    the next epoch and at the end of training. ModelCheckpoint(save_last=True) writes it only when the monitored
    metric improves, and its save points (validation end, train epoch end) come before the epoch's training loss is
    logged, so a run resumed from them never logs that line."""

    def __init__(self, path):
        self.path, self.saving = str(path), False

    def save(self, trainer: L.Trainer) -> None:
        # The epoch loop's per-epoch counters, reset now as Lightning resets them when the next epoch begins: else a
        # resumed fit sees the last batch of the previous epoch as done and skips the whole epoch. A restarted epoch
        # loop counts one logging step more than it ran (it assumes the save came mid-batch): saved one less.
        loop = trainer.fit_loop.epoch_loop
        for progress in (loop.batch_progress, loop.scheduler_progress, loop.automatic_optimization.optim_progress,
                         loop.val_loop.batch_progress):
            progress.reset_on_run()
        loop.val_loop.batch_progress.total.reset()
        self.saving, loop._batches_that_stepped = True, loop._batches_that_stepped - 1
        try:
            trainer.save_checkpoint(self.path)
        finally:
            self.saving, loop._batches_that_stepped = False, loop._batches_that_stepped + 1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self.save(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self.saving:  # "epoch": the last epoch in the weights, as in Lightning's own checkpoints
            checkpoint["epoch"] = trainer.current_epoch - 1


def resume_from(run: RunFolder) -> dict:
    """The last checkpoint, checked before Lightning loads it: tensors only, a fit's whole state (else one line)."""
    return read_training_checkpoint(run.checkpoint("last"))


def fit_interruptible(trainer: L.Trainer, module: L.LightningModule, train_loader, val_loader,
                      ckpt_path: str | None) -> None:
    """``trainer.fit``; Ctrl-C ends in KeyboardInterrupt (Lightning turns it into sys.exit(1) and ignores SIGINT after)."""
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt from None
