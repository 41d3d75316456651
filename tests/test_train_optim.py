"""Learning-rate schedules: cosine with warm restarts through timm's scheduler, per parameter group."""
import math

import pytest
import torch

from medfit.config import OptimConfig, config_from_dict
from medfit.errors import ConfigError
from medfit.train.optim import build_optimizer, lr_schedule


def _rates(optim: OptimConfig, steps_per_epoch: int, total: int) -> list[list[float]]:
    head, body = torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)
    opt = build_optimizer([{"params": head.parameters(), "lr": optim.head_lr},
                           {"params": body.parameters(), "lr": optim.backbone_lr}], optim)
    schedule = lr_schedule(opt, optim, steps_per_epoch, total)
    out = []
    for _ in range(total):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        schedule.step()
    return out


def test_cosine_with_warm_restarts_follows_sgdr_per_group():
    optim = config_from_dict({"train": {"optim": {
        "optimizer": "sgd", "lr": 0.1, "head_lr": 0.1, "backbone_lr": 0.01, "scheduler": "cosine_restarts",
        "warmup_epochs": 0, "restart_epochs": 2, "restart_mult": 2, "min_lr_ratio": 0.0}}}).train.optim
    rates = _rates(optim, steps_per_epoch=5, total=70)
    head = [r[0] for r in rates]
    # T_0 = 2 epochs = 10 steps, T_mult = 2: cycles of 10, 20 and 40 steps restart at steps 10 and 30
    restarts = [s for s in range(1, 70) if head[s] > head[s - 1]]
    assert restarts == [10, 30]
    for start, length in ((0, 10), (10, 20), (30, 40)):
        for t in range(length):  # SGDR: lr_min + (lr - lr_min) * (1 + cos(pi * t / T_i)) / 2
            assert head[start + t] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * t / length)), abs=1e-9)
    assert all(r[1] == pytest.approx(r[0] / 10) for r in rates)  # the backbone keeps its own (10x lower) rate


def test_restarts_after_a_linear_warmup_and_down_to_the_min_ratio():
    optim = OptimConfig(optimizer="sgd", lr=1.0, head_lr=1.0, backbone_lr=1.0, scheduler="cosine_restarts",
                        warmup_epochs=1, restart_epochs=1, restart_mult=1, min_lr_ratio=0.1)
    head = [r[0] for r in _rates(optim, steps_per_epoch=4, total=16)]
    assert head[:4] == pytest.approx([0.25, 0.4375, 0.625, 0.8125])  # timm's warmup from 1/warmup_steps
    assert head[4] == pytest.approx(1.0) and head[8] == pytest.approx(1.0) and head[12] == pytest.approx(1.0)
    assert min(head[4:]) >= 0.1 - 1e-9


def test_restart_settings_are_checked():
    with pytest.raises(ConfigError, match="restart"):
        _rates(OptimConfig(scheduler="cosine_restarts", head_lr=0.1, backbone_lr=0.1, restart_mult=0.5), 4, 8)


def test_sgd_takes_nesterov_momentum_when_asked():
    params = [{"params": torch.nn.Linear(2, 1).parameters()}]
    plain = build_optimizer(params, OptimConfig(optimizer="sgd", momentum=0.9))
    assert plain.defaults["nesterov"] is False and plain.defaults["momentum"] == 0.9
    params = [{"params": torch.nn.Linear(2, 1).parameters()}]
    nesterov = build_optimizer(params, OptimConfig(optimizer="sgd", momentum=0.9, nesterov=True))
    assert nesterov.defaults["nesterov"] is True


def test_nesterov_without_momentum_is_refused_not_dropped():
    with pytest.raises(ConfigError, match="nesterov"):
        build_optimizer([{"params": torch.nn.Linear(2, 1).parameters()}],
                        OptimConfig(optimizer="sgd", momentum=0.0, nesterov=True))
