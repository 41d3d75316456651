"""The warmed-up EMA used by train.ema_decay."""
import medfit  # noqa: F401
import torch
from torch.optim.swa_utils import AveragedModel

from medfit.train.averaging import WarmupEMA


def test_warmup_ema_lets_the_first_weights_fade_and_then_uses_the_set_decay():
    net = torch.nn.Linear(3, 1, bias=False)
    avg = AveragedModel(net, avg_fn=WarmupEMA(0.99), use_buffers=True)
    with torch.no_grad():
        net.weight.fill_(100.0)  # a wild first step
    avg.update_parameters(net)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(300):
        avg.update_parameters(net)
    # a plain 0.99 EMA keeps 0.99**300 = 4.9 % of the first weights (about 5.9 here); the warmup keeps almost none
    assert abs(float(avg.module.weight.mean()) - 1.0) < 0.01
    ema = WarmupEMA(0.99)
    assert abs(ema(torch.tensor(0.0), torch.tensor(1.0), 0).item() - 0.9) < 1e-6  # d = 1/10 at the first update
    assert abs(ema(torch.tensor(0.0), torch.tensor(1.0), 10_000).item() - 0.01) < 1e-7  # then capped at 0.99
