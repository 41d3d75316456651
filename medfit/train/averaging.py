"""Weight averaging for training: an EMA whose decay warms up, run by Lightning's ``WeightAveraging`` callback."""
from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging


class WarmupEMA:
    """EMA update with decay ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the timm / TensorFlow warmup).

    A fixed decay keeps ``decay**steps`` of the first step's weights and BatchNorm statistics in the average, which
    on a short from-scratch run is enough to ruin it; the warmup lets the early weights fade.
    """

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged) -> torch.Tensor:
        n = float(num_averaged)
        d = min(self.decay, (1.0 + n) / (10.0 + n))
        return d * averaged + (1.0 - d) * current


def ema_callback(decay: float) -> WeightAveraging:
    """Lightning callback keeping an EMA of the weights; validation, checkpoints and predictions use the average."""
    return WeightAveraging(avg_fn=WarmupEMA(decay))


class StochasticWeightAverage(WeightAveraging):
    """SWA: the equal-weight average (Lightning's ``WeightAveraging`` default) of the weights after every step from
    epoch ``start_epoch`` on. Until the first update, validation and checkpoints use the current weights (the plain
    callback would score the initial weights), and a run that stops before then keeps its own weights.

    Lightning's ``StochasticWeightAveraging`` callback swaps the average in only when training ends, after the best
    checkpoint was chosen on weights that were not averaged; this one validates and checkpoints the average itself.
    """

    def __init__(self, start_epoch: int):
        super().__init__()
        self.start_epoch, self._epoch = start_epoch, 0

    def should_update(self, step_idx=None, epoch_idx=None) -> bool:
        return step_idx is not None and self._epoch >= self.start_epoch

    def started(self) -> bool:
        """Whether the average holds at least one update."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._epoch = trainer.current_epoch
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.started():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.started():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.started():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.started():
            super().on_train_end(trainer, pl_module)


def swa_callback(epochs: int, swa_epochs: int) -> StochasticWeightAverage:
    """SWA over the last ``swa_epochs`` of ``epochs``."""
    return StochasticWeightAverage(max(0, epochs - swa_epochs))
