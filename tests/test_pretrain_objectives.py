"""Each pretraining objective's defining property, on real PneumoniaMNIST chest X-rays (28x28, a 2-block ViT)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfit.config import ModelConfig, PretrainConfig
from medfit.pretrain.backbone import create_vit
from medfit.pretrain.boxloc import box_l1_error
from medfit.pretrain.module import build_objective, wrap_encoder
from medfit.pretrain.views import random_boxes

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
TINY_VIT = ModelConfig(name="vit_tiny_patch16_224", in_chans=1,
                       kwargs=dict(patch_size=4, embed_dim=64, depth=2, num_heads=2))


def tiny_pretrain_config(**kw) -> PretrainConfig:
    return PretrainConfig(dino_out_dim=256, dino_hidden_dim=128, dino_bottleneck_dim=64, decoder_dim=64,
                          decoder_depth=1, decoder_heads=2, local_crops=2, **kw)


@pytest.fixture(scope="module")
def xrays(shared_data):
    """(train pool, held-out) real chest X-rays as float tensors in [0, 1]."""
    d = np.load(shared_data / NPZ)
    to_t = lambda a: torch.from_numpy(a).float()[:, None] / 255  # noqa: E731
    return to_t(d["train_images"][:1024]), to_t(d["val_images"][:64])


def make(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = tiny_pretrain_config(**kw)
    encoder = wrap_encoder(create_vit(TINY_VIT, cfg, 28))
    return encoder, build_objective(name, encoder, cfg, 28)


def train(encoder, objective, pool, steps, lr, batch=64, after_step=None):
    params = [p for p in [*encoder.parameters(), *objective.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    g = torch.Generator().manual_seed(1)
    losses = []
    for step in range(steps):
        torch.manual_seed(100 + step)
        loss = objective.loss(encoder, pool[torch.randint(0, len(pool), (batch,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if after_step:
            after_step()
        losses.append(loss.item())
    return losses


def masked_patch_error(encoder, mae, images) -> float:
    """Pixel MSE of the reconstruction on the masked patches only (same mask every call)."""
    _, filled, idx_mask = mae.reconstruct(encoder, images, torch.Generator().manual_seed(7))
    from lightly.models.utils import get_at_index, patchify

    pick = lambda x: get_at_index(patchify(x, mae.patch), idx_mask - mae.num_prefix)  # noqa: E731
    return float(F.mse_loss(pick(filled), pick(images)))


def test_mae_loss_falls_and_held_out_reconstructions_improve(xrays):
    pool, held_out = xrays
    encoder, mae = make("mae")
    before = masked_patch_error(encoder, mae, held_out)
    losses = train(encoder, mae, pool, steps=40, lr=2e-3)
    after = masked_patch_error(encoder, mae, held_out)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    assert after < 0.5 * before, (before, after)
    # better than filling each masked patch with the image's mean visible intensity
    _, _, idx_mask = mae.reconstruct(encoder, held_out, torch.Generator().manual_seed(7))
    flat = held_out.flatten(1)
    baseline = float(((flat - flat.mean(1, keepdim=True)) ** 2).mean())
    assert after < baseline, (after, baseline)


def test_mae_with_windowed_attention_keeps_mask_tokens_and_learns(xrays):
    pool, held_out = xrays
    encoder, mae = make("mae", window_size=3, global_every=2)
    before = masked_patch_error(encoder, mae, held_out)
    losses = train(encoder, mae, pool, steps=8, lr=2e-3, batch=32)
    assert masked_patch_error(encoder, mae, held_out) < before and losses[-1] < losses[0]


def test_dino_teacher_is_an_ema_of_the_student(xrays):
    pool, _ = xrays
    encoder, dino = make("dino")
    old = [p.detach().clone() for p in [*dino.teacher_encoder.parameters(), *dino.teacher_head.parameters()]]
    assert all(not p.requires_grad for p in [*dino.teacher_encoder.parameters(), *dino.teacher_head.parameters()])
    train(encoder, dino, pool, steps=1, lr=1e-3, batch=16)
    student = [*encoder.parameters(), *dino.head.parameters()]
    assert any(not torch.equal(s, o) for s, o in zip(student, old)), "the student did not move"
    dino.update_teacher(encoder, 0.9)
    teacher = [*dino.teacher_encoder.parameters(), *dino.teacher_head.parameters()]
    assert len(teacher) == len(student) == len(old)
    for t, s, o in zip(teacher, student, old):
        torch.testing.assert_close(t, 0.9 * o + 0.1 * s.detach())


def test_dino_two_views_of_one_image_embed_closer_than_two_images(xrays):
    pool, held_out = xrays
    encoder, dino = make("dino")
    losses = train(encoder, dino, pool, steps=12, lr=1e-4, batch=32,
                   after_step=lambda: dino.update_teacher(encoder, 0.99))
    assert np.isfinite(losses).all()
    encoder.eval()
    torch.manual_seed(3)
    with torch.no_grad():
        v1, v2 = dino.views(held_out)[:2]  # the two global crops of each held-out image
        a, b = encoder(v1), encoder(v2)
    raw = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    assert raw.std() > 1e-4, "embeddings collapsed to one point"
    centre = torch.cat([a, b]).mean(0)  # the component every image shares says nothing about which image it is
    sim = F.normalize(a - centre, dim=1) @ F.normalize(b - centre, dim=1).T
    n = len(sim)
    same = sim.diag()
    others = (sim.sum(1) - same) / (n - 1)
    assert same.mean() > others.mean() + 0.1, (float(same.mean()), float(others.mean()))
    rank = (sim > same[:, None]).sum(1).float()  # other images embedded closer than the image's own second view
    assert rank.median() < 0.85 * (n - 1) / 2, rank  # chance: (n - 1) / 2


def test_box_regression_error_falls_below_random_guessing(xrays):
    pool, held_out = xrays
    encoder, boxloc = make("boxloc")
    torch.manual_seed(5)
    queries, boxes = boxloc.sample(held_out)

    def error():
        with torch.no_grad():
            return box_l1_error(boxloc.predict_boxes(encoder, held_out, queries), boxes)

    before = error()
    losses = train(encoder, boxloc, pool, steps=45, lr=1e-3, batch=48)
    after = error()
    torch.manual_seed(6)  # random guessing: boxes drawn like the queries', 50 guesses per query
    guesses = random_boxes(50 * len(boxes), boxloc.scale, ratio=(1 / 2, 2))
    random_guess = box_l1_error(guesses, boxes.repeat(50, 1))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]), losses
    assert after < before and after < 0.9 * random_guess, (before, after, random_guess)
