"""Layer-wise LR decay, SWA (its LR hold and its average), stochastic depth: each does what its key says."""
import lightning as L
import pytest
import timm
import torch
from torch.utils.data import DataLoader, TensorDataset

from medfit.commands.pipeline import train_run
from medfit.config import ModelConfig, OptimConfig, config_from_dict
from medfit.errors import ConfigError
from medfit.models.backbones import create_backbone
from medfit.run_folder import RunFolder
from medfit.task import Task
from medfit.train.averaging import swa_callback
from medfit.train.engine import build_trainer
from medfit.train.module import ClassifierModule
from medfit.train.optim import layer_decay_groups, lr_schedule


def test_layer_decay_gives_each_vit_block_the_documented_lr():
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=3, num_classes=1, in_chans=1)
    groups = layer_decay_groups(vit, OptimConfig(lr=1e-3, weight_decay=0.05), 0.5)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    # layers: 0 = patch/pos embedding and cls token, 1..3 = blocks, 4 = final norm and head (timm's group_matcher)
    assert lr_of[id(vit.head.weight)] == (pytest.approx(1e-3), 0.05)
    for i, block in enumerate(vit.blocks):
        assert lr_of[id(block.attn.qkv.weight)] == (pytest.approx(1e-3 * 0.5 ** (3 - i)), 0.05)
        assert lr_of[id(block.attn.qkv.bias)][1] == 0.0  # biases and norms take no weight decay
    assert lr_of[id(vit.patch_embed.proj.weight)][0] == pytest.approx(1e-3 * 0.5 ** 4)
    assert lr_of[id(vit.pos_embed)][1] == 0.0  # the model's no_weight_decay() list


def test_layer_decay_is_refused_for_a_network_without_layer_groups():
    with pytest.raises(ConfigError, match="train.layer_decay"):
        layer_decay_groups(torch.nn.Linear(2, 1), OptimConfig(), 0.7)


def test_swa_lr_is_held_constant_from_the_first_averaging_step():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lr_schedule(opt, OptimConfig(lr=0.1, warmup_epochs=1, min_lr_ratio=0.0), 10, 100, hold=(60, 0.3))
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[9] == pytest.approx(0.1) and lrs[30] < 0.1 and lrs[59] > 0.03  # warmup, then cosine ...
    assert all(lr == pytest.approx(0.03) for lr in lrs[60:])  # ... then swa_lr / lr


class Record(L.Callback):
    """The raw weights after every training step."""

    def __init__(self):
        self.after_step: list[tuple[int, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.after_step.append((trainer.current_epoch, module.model.weight.detach().clone()))


def test_swa_validates_and_keeps_the_equal_average_of_the_last_epochs(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), (torch.rand(32) < 0.5).float()
    loader = DataLoader(TensorDataset(x, y, torch.arange(32)), batch_size=8)
    cfg = config_from_dict({"train": {"epochs": 3, "swa_epochs": 2, "optim": {"lr": 0.1, "scheduler": "none"},
                                      "augment": {"rotate_degrees": 0, "scale": [], "translate": 0, "brightness": 0,
                                                  "contrast": 0}}}).train
    net = torch.nn.Linear(4, 1)
    module = ClassifierModule(net, Task("binary"), cfg, None, len(loader))
    record, swa = Record(), swa_callback(cfg.epochs, cfg.swa_epochs)
    trainer = L.Trainer(max_epochs=3, callbacks=[record, swa], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, loader)
    averaged = torch.stack([w for epoch, w in record.after_step if epoch >= 1]).mean(0)
    assert torch.allclose(net.weight, averaged, atol=1e-6)  # steps of epochs 1 and 2 (4 each), equally weighted
    assert not torch.allclose(averaged, record.after_step[-1][1])


def test_swa_with_ema_is_refused(tmp_path):
    cfg = config_from_dict({"output_dir": str(tmp_path), "train": {"swa_epochs": 2, "ema_decay": 0.99,
                                                                   "logger": "none"}})
    with pytest.raises(ConfigError, match="train.swa_epochs"):
        build_trainer(cfg, RunFolder(tmp_path / "run"), [])


def test_drop_path_rate_reaches_timm_stochastic_depth():
    vit, _ = create_backbone(ModelConfig(name="vit_tiny_patch16_224", drop_path_rate=0.3,
                                         kwargs={"img_size": 32, "depth": 4}), 1)
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for b in vit.blocks]  # the first block: Identity
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])  # linear to the rate
    x = torch.rand(2, 1, 32, 32)
    torch.manual_seed(0)
    vit.train()
    assert not torch.equal(vit(x), vit(x))  # blocks dropped at random while training
    vit.eval()
    assert torch.equal(vit(x), vit(x))
    plain, _ = create_backbone(ModelConfig(name="vit_tiny_patch16_224", kwargs={"img_size": 32, "depth": 4}), 1)
    assert all(isinstance(b.drop_path1, torch.nn.Identity) for b in plain.blocks)


class StopAfterFirstEpoch(L.Callback):
    """Simulates a run killed after its first epoch (the epoch's checkpoint is written)."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


class FinalWeights(L.Callback):
    """The weights a fit ends with (after the SWA callback swapped its average in)."""

    def on_fit_end(self, trainer, pl_module):
        self.epoch, self.state = trainer.current_epoch, {k: v.clone() for k, v in pl_module.state_dict().items()}


def test_a_run_with_every_regulariser_resumes_exactly(shared_data, tmp_path):
    def config(sub):
        return config_from_dict({
            "name": "regularised", "seed": 3, "output_dir": str(tmp_path / sub),
            "data": {"source": "medmnist", "root": str(shared_data / "pneumoniamnist/pneumoniamnist_reconstructed.npz"),
                     "image_size": 28, "limit_per_split": 150},
            "model": {"name": "resnet10t", "drop_path_rate": 0.1},
            "train": {"epochs": 2, "batch_size": 50, "logger": "none", "progress_bar": False, "loss": "focal",
                      "label_smoothing": 0.1, "swa_epochs": 1, "swa_lr": 5e-4, "progressive_resize": [0.75, 0.5],
                      "augment": {"policy": "trivialaugment", "resized_crop": [0.6, 1.0], "mixup": 0.4,
                                  "cutmix": 1.0}},
            "audit": {"enabled": False}})

    full, resumed = FinalWeights(), FinalWeights()
    train_run(config("full"), callbacks=[full])
    train_run(config("resumed"), callbacks=[StopAfterFirstEpoch()])  # epoch 0 improves: last.ckpt holds it
    train_run(config("resumed"), resume=True, callbacks=[resumed])
    assert full.epoch == resumed.epoch == 2
    for k in full.state:  # the SWA average of epoch 1's steps
        assert torch.equal(full.state[k], resumed.state[k]), k
