"""Pretrain a ViT from a config: manifest images (labels ignored) -> Lightning fit -> timm weight file, probes, pictures."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from medfit.config import ExperimentConfig
from medfit.data.datasets import EpochSeededSampler, PreparedDataset
from medfit.audit import split_grouper
from medfit.data.manifest import Manifest, build_manifest
from medfit.errors import ConfigError, DataError
from medfit.pretrain.backbone import create_vit
from medfit.pretrain.module import PretrainModule, wrap_encoder
from medfit.pretrain.pictures import class_token_attention, save_attention_maps, save_mae_reconstructions
from medfit.pretrain.probe import probe_scores
from medfit.run_folder import RunFolder, atomic_write
from medfit.train.engine import build_trainer, quiet_lightning
from medfit.train.fit import seed_everything
from medfit.train.inputs import dataset_for


def export_backbone(vit: torch.nn.Module, path: Path, metadata: dict | None = None) -> Path:
    """Write the ViT's state_dict (plain timm keys, no head) as safetensors for ``model.pretrained``."""
    state = {k: v.detach().cpu().contiguous() for k, v in vit.state_dict().items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    return atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=meta))


def splits_manifest(manifest: Manifest, splits: list[str]) -> Manifest:
    """The rows of the given splits."""
    return manifest.with_df(manifest.df[manifest.df["split"].isin(splits)])


def pretrain_strategy(cfg: ExperimentConfig) -> str:
    """``train.strategy``, with DDP told that each step leaves the other objectives' heads without gradients."""
    t = cfg.train
    several = len(set(cfg.pretrain.objectives)) > 1
    multi = str(t.devices) not in ("1",) or t.num_nodes > 1
    if several and (t.strategy == "ddp" or (t.strategy == "auto" and multi)):
        return "ddp_find_unused_parameters_true"
    return t.strategy


def probe_split_name(cfg: ExperimentConfig, manifest: Manifest) -> str:
    """The split the probes score: pretrain.probe_split, else test when present, else val."""
    present = set(manifest.df["split"])
    name = cfg.pretrain.probe_split or ("test" if "test" in present else "val")
    if name not in present:
        raise ConfigError(f"pretrain.probe_split: split {name!r} not in the manifest (has {sorted(present)})")
    return name


def pretrain(cfg: ExperimentConfig, data_dir: str | None = None, resume: bool = False) -> RunFolder:
    """Pretrain, export the encoder weights, score the probes and draw the pictures; returns the run folder."""
    quiet_lightning()
    pre = cfg.pretrain
    seed_everything(cfg.seed)
    run = RunFolder.of(cfg.output_dir, cfg.name)
    run.check_start(resume)
    manifest = build_manifest(cfg, data_dir, split_grouper(cfg))  # the fine-tuning run's split draw
    pool = splits_manifest(manifest, pre.splits)
    if len(pool) < pre.batch_size:
        raise DataError(f"{cfg.data.root}: {len(pool)} images in splits {pre.splits}, fewer than pretrain.batch_size "
                        f"{pre.batch_size}; lower the batch size or add splits to pretrain.splits")
    run.write_config(cfg)
    run.write_csv("manifest", manifest.df)

    show = cfg.train.progress_bar
    images = dataset_for(pool, cfg, show, "loading pretraining images")
    size = cfg.data.image_size
    vit = create_vit(cfg.model, pre, size)
    loader = DataLoader(images, batch_size=pre.batch_size, sampler=EpochSeededSampler(len(images), cfg.seed),
                        num_workers=cfg.data.num_workers, drop_last=True, persistent_workers=cfg.data.num_workers > 0)
    module = PretrainModule(vit, pre, size, len(loader), cfg.seed)
    callbacks = [ModelCheckpoint(dirpath=run.checkpoints, save_last=True, save_top_k=0, enable_version_counter=False)]
    trainer = build_trainer(cfg, run, callbacks, supervised=False, max_epochs=pre.epochs,
                            max_steps=pre.max_steps or -1, strategy=pretrain_strategy(cfg),
                            gradient_clip_val=pre.optim.grad_clip or None, deterministic="warn")
    t0 = time.perf_counter()
    trainer.fit(module, loader, ckpt_path=str(run.checkpoint("last")) if resume else None)
    fit_seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return run

    module = module.cpu().eval()
    weights = export_backbone(module.vit, run.file("encoder_weights"),
                              {"medfit": "pretrain", "model": cfg.model.name, "objectives": ",".join(pre.objectives)})
    info = {"objectives": pre.objectives, "steps": trainer.global_step, "epochs": trainer.current_epoch,
            "fit_seconds": round(fit_seconds, 1),
            "images_per_second": round(trainer.global_step * pre.batch_size / max(fit_seconds, 1e-9), 1),
            "losses": {k: round(float(v), 5) for k, v in trainer.callback_metrics.items() if k.endswith("_loss")},
            "weights": str(weights), "finetune": f"model.pretrained: {weights}"}
    shown = _held_out(cfg, manifest, pre, images)
    info["pictures"] = draw_pictures(module, shown, run.plots, cfg.seed)
    if pre.probe and manifest.labels().size:
        info["probe"] = run_probes(cfg, manifest, module, images if "train" in pre.splits else None)
    run.write_json("pretrain_metrics", info)
    return run


def _held_out(cfg: ExperimentConfig, manifest: Manifest, pre, pool: PreparedDataset) -> torch.Tensor:
    """A few images for the pictures, from a split not pretrained on when there is one."""
    others = [s for s in ("test", "val") if s in set(manifest.df["split"]) and s not in pre.splits]
    if others:
        part = manifest.split(others[0])
        return dataset_for(part.with_df(part.df.head(pre.pictures)), cfg, False).images.float()
    return pool.images[: pre.pictures].float()


def draw_pictures(module: PretrainModule, images: torch.Tensor, plots: Path, seed: int) -> list[str]:
    """MAE reconstructions (when MAE is an objective) and class-token attention maps, as PNGs in ``plots``."""
    out = []
    if "mae" in module.objectives:
        masked, filled, _ = module.objectives["mae"].reconstruct(module.encoder, images,
                                                                 torch.Generator().manual_seed(seed))
        out.append(save_mae_reconstructions(images, masked, filled, plots / "mae_reconstructions.png").name)
    maps = class_token_attention(module.encoder, images)
    out.append(save_attention_maps(images, maps, plots / "attention_maps.png").name)
    return out


def run_probes(cfg: ExperimentConfig, manifest: Manifest, module: PretrainModule,
               train_set: PreparedDataset | None) -> dict:
    """Linear-probe and k-NN AUC of the pretrained encoder and of the same ViT at random init (the baseline)."""
    name = probe_split_name(cfg, manifest)
    if train_set is None or len(train_set) != (manifest.df["split"] == "train").sum():
        train_set = dataset_for(manifest.split("train"), cfg, False)
    test_set = dataset_for(manifest.split(name), cfg, False)
    task, k = manifest.task, cfg.pretrain.knn_k
    train_y = manifest.split("train").labels()
    test_y = manifest.split(name).labels()
    torch.manual_seed(cfg.seed)
    baseline = wrap_encoder(create_vit(cfg.model, cfg.pretrain, cfg.data.image_size))
    return {"split": name, "train_images": len(train_set), "scored_images": len(test_set),
            "pretrained": probe_scores(module.encoder, train_set.images.float(), train_y, test_set.images.float(),
                                       test_y, task, k, cfg.seed),
            "random_init": probe_scores(baseline, train_set.images.float(), train_y, test_set.images.float(), test_y,
                                        task, k, cfg.seed)}
