"""Ordered slice aggregators (GRU, transformer) beside the unordered MIL, and N central slices a stride apart."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from medfit.config import ExperimentConfig, updated
from medfit.errors import ConfigError
from medfit.models import build_network
from medfit.models.registry import strip_head
from medfit.models.sequence import SliceSequence
from medfit.models.volume_models import GatedAttentionMIL
from medfit.preprocess.reformat import central_slice_indices
from medfit.preprocess.sampling import sampled_slices
from tiny_fit import fit_binary

torch.set_num_threads(1)


def order_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Six 4x4 slices per study, one bright and one dark, the rest noise: the label is whether the bright slice comes
    first. Both orders hold the same slices, so a model that ignores the order cannot tell them apart."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, 1, 4, 4, generator=g) * 0.3
    y = torch.randint(0, 2, (n,), generator=g)
    for i in range(n):
        a, b = sorted(torch.randperm(6, generator=g)[:2].tolist())
        bright, dark = (a, b) if y[i] else (b, a)
        x[i, bright] += 2.0
        x[i, dark] -= 2.0
    return x, y.float()


def fitted_auc(model: nn.Module) -> float:
    x, y = order_task(512, 0)
    xt, yt = order_task(256, 1)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    torch.manual_seed(0)
    fit_binary(model, x, y, opt, 3)
    with torch.no_grad():
        return roc_auc_score(yt.numpy(), model.eval()(xt)[:, 0].numpy())


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU())


def test_ordered_aggregators_read_the_slice_order_the_mil_cannot():
    aucs = {"mil": fitted_auc(GatedAttentionMIL(encoder(), 16, 1, hidden=16)),
            "gru": fitted_auc(SliceSequence(encoder(), 16, 1, "gru", hidden=16)),
            "transformer": fitted_auc(SliceSequence(encoder(), 16, 1, "transformer", hidden=16))}
    # measured: MIL 0.513, GRU 1.000, transformer 0.982
    assert abs(aucs["mil"] - 0.5) < 0.1 and aucs["gru"] > 0.9 and aucs["transformer"] > 0.9, aucs
    seq = SliceSequence(encoder(), 16, 3, "gru", hidden=8).eval()
    x = torch.rand(2, 5, 1, 4, 4)
    with torch.no_grad():
        assert seq(x).shape == (2, 3) and not torch.allclose(seq(x), seq(x.flip(1)))  # order matters
    with pytest.raises(ConfigError, match="multiple of 4"):
        SliceSequence(encoder(), 16, 1, "transformer", hidden=10)


def test_aggregator_and_stride_in_the_config():
    cfg = updated(ExperimentConfig(), {"data.image_size": 32, "model.name": "test_resnet", "volume.mode": "slice_set",
                                       "volume.aggregator": "gru", "volume.slices": 4, "volume.stride": 3,
                                       "volume.mil_hidden": 16, "data.task": "multilabel",
                                       "data.label_columns": ["C1", "C2", "any"]})
    net = build_network(cfg, 3)
    assert isinstance(net, SliceSequence) and net(torch.rand(2, 4, 1, 32, 32)).shape == (2, 3)
    assert strip_head(net) == 32 and isinstance(net.head, nn.Identity)  # GRU state both ways: 2 x 16
    with pytest.raises(ConfigError, match="volume.aggregator 'gru'"):
        updated(cfg, {"volume.mode": "3d", "model.kind": "monai3d", "model.name": "resnet10"})
    with pytest.raises(ConfigError, match="volume.stride 3"):
        updated(cfg, {"volume.mode": "2.5d", "volume.aggregator": "attention"})


def test_central_slices_a_stride_apart():
    assert central_slice_indices(100, 25) == list(range(38, 63))
    assert central_slice_indices(250, 8, 4) == [109, 113, 117, 121, 125, 129, 133, 137]  # 125 = sagittal centre
    assert central_slice_indices(10, 6, 3) == [0, 0, 2, 5, 8, 9]  # wider than the study: edges repeat, still 6
    assert sampled_slices(250, 8, 4) == central_slice_indices(250, 8, 4)
    assert sampled_slices(10, 4) == [0, 3, 6, 9] and np.array_equal(sampled_slices(5, 5), range(5))
