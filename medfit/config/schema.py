"""The experiment config's sections as frozen dataclasses (YAML keys = field names)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

TaskKind = Literal["binary", "multiclass", "multilabel"]
# One precision vocabulary for every engine (Lightning's names); "auto": bf16 where the GPU has it, else 32-bit.
Precision = Literal["auto", "32-true", "bf16-mixed", "bf16-true", "16-mixed"]
ModelKind = Literal["timm", "fusion", "open_clip", "clip_zero_shot", "monai3d", "vlm"]


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they become a manifest."""

    source: Literal["folder", "medmnist", "csv", "manifest"] = "folder"
    root: str = ""  # folder tree, .npz or CSV; relative paths resolve against the data dir
    data_dir: str = ""  # base for relative roots: --data, else $MEDFIT_DATA, else ../shared/data
    patient_regex: str = r"(person\d+)"  # first group of a match on the file name is the patient id
    patient_scope: Literal["global", "split"] = "global"  # "split": ids are unique per split folder only
    split_folders: dict[str, str] = field(default_factory=dict)  # folder -> split, e.g. {Training: train}; empty: common names
    image_column: str = "image"
    label_columns: list[str] = field(default_factory=lambda: ["label"])
    patient_column: str = "patient_id"
    site_column: str = "site"
    class_names: list[str] = field(default_factory=list)  # empty: taken from the data
    task: TaskKind = "binary"
    val_fraction: float = 0.1  # drawn from the training pool, stratified and grouped by patient
    split_seed: int = 0
    image_size: int = 64
    channels: int = 1
    num_workers: int = 0
    # prepared inputs held in memory, or written once to a .npy shard in the cache and streamed from it (auto: stream
    # a split whose inputs would take more than memory_limit_gb; docs/scale.md)
    storage: Literal["auto", "memory", "stream"] = "auto"
    memory_limit_gb: float = 8.0
    limit_per_split: int = 0  # >0: keep at most this many images per split (quick runs)
    corrections: str = ""  # reviewer decisions CSV (medfit review): image, decision keep/drop/relabel, label


@dataclass(frozen=True)
class PreprocessConfig:
    """Image preprocessing before augmentation (see medfit.preprocess)."""

    recipe: str = ""  # named recipe, e.g. "radiograph"; empty means resize only
    ops: list[dict] = field(default_factory=list)  # explicit ops: [{name: clahe, clip: 2.5}, ...]
    cache_dir: str = ""  # empty: <output_dir>/.cache
    resize: Literal["stretch", "pad"] = "stretch"  # stretch to a square, or keep the aspect ratio and pad
    irregular_series: Literal["resample", "error"] = "resample"  # DICOM gantry tilt / uneven slice spacing
    on_bad_file: Literal["error", "skip"] = "error"  # skip: unreadable rows are dropped (and listed) before training


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule (shared by train, pretrain and vlm)."""

    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    scheduler: Literal["cosine", "cosine_restarts", "none"] = "cosine"  # cosine_restarts: SGDR (timm.scheduler)
    warmup_epochs: float = 1.0  # linear warmup before the cosine decay
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio
    restart_epochs: float = 10.0  # cosine_restarts: T_0, the first cycle's length in epochs
    restart_mult: float = 1.0  # cosine_restarts: T_mult, each cycle this many times longer than the one before
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    head_lr: float = 0.0  # 0: lr
    backbone_lr: float = 0.0  # 0: lr


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters (peft): rank, scaling, dropout and the adapted layers."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = field(default_factory=list)  # empty: qkv/proj/fc1/fc2 (ViT), every conv (CNN)


@dataclass(frozen=True)
class FusionMemberConfig:
    """One backbone of a feature-fusion ensemble: a trained run folder, or a timm name (+ optional weight file)."""

    run: str = ""  # run folder: its config gives the network, its best checkpoint the weights
    name: str = ""  # timm model name when no run is given
    pretrained: str = ""  # local weight file for ``name``
    freeze: bool = False  # keep this member's weights fixed


@dataclass(frozen=True)
class FusionConfig:
    """``model.kind: fusion``: members' pooled features projected, concatenated, normalised, MLP head."""

    members: list[FusionMemberConfig] = field(default_factory=list)
    dim: int = 768  # each member's pooled features are projected to this width
    hidden: int = 256
    dropout: float = 0.3


@dataclass(frozen=True)
class ClipConfig:
    """``model.kind: open_clip`` / ``clip_zero_shot``: an open_clip model (BiomedCLIP) and zero-shot prompts."""

    source: str = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"  # or an open_clip model folder
    cache_dir: str = ""  # HF cache for hf-hub: models; empty: $HF_HUB_CACHE or ~/.cache/huggingface/hub
    image_size: int = 0  # >0: resize the image tower's input (position embeddings resampled); 0: its own
    prompts: dict = field(default_factory=dict)  # zero-shot: class name -> description or list of descriptions
    prompt_templates: list[str] = field(default_factory=lambda: ["a medical image showing {}."])


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build: ``kind`` picks the builder (medfit.models.registry); each kind uses its own keys."""

    kind: ModelKind = "timm"
    name: str = "resnet18"  # timm: any timm model name or zoo alias; monai3d: resnet10/18/34/50, densenet121/169/201
    pretrained: str = ""  # timm: weight source (file, folder, run folder, timm:NAME, hf-hub:...); empty = random init
    in_chans: int = 0  # 0: data.channels (a different value is an error)
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # timm: stochastic depth, the deepest block's drop probability (0: off)
    kwargs: dict = field(default_factory=dict)  # extra keyword arguments for timm.create_model / the MONAI network
    cbam: list[str] = field(default_factory=list)  # timm CNNs: CBAM after these modules or ["default"] per family
    cbam_reduction: int = 16
    window_size: int = 0  # timm ViTs: >0 rebuilds ViTDet windowed attention (as pretrain.window_size) for fine-tuning
    global_every: int = 3  # with window_size: every this-many-th block, counted back from the last, attends globally
    finetune: Literal["full", "linear", "lora"] = "full"  # linear: frozen backbone, head only
    lora: LoraConfig = field(default_factory=LoraConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (applied on tensors, on the fly)."""

    hflip: Union[bool, float] = False  # probability of a horizontal flip (true: 0.5)
    rotate_degrees: float = 10.0
    scale: list[float] = field(default_factory=lambda: [0.85, 1.0])
    # shift per axis as a fraction of the size: up to t, or [lo, hi]: a magnitude in [lo, hi], either direction
    translate: Union[float, list[float]] = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    repeats: int = 1  # each training image is drawn (and augmented anew) this many times per epoch
    # torchvision.transforms.v2 per image, after the affine and intensity jitter above (medfit.train.augment)
    policy: Literal["none", "randaugment", "trivialaugment"] = "none"
    magnitude: int = 9  # randaugment: magnitude of each op (0-30)
    num_ops: int = 2  # randaugment: ops per image
    resized_crop: list[float] = field(default_factory=list)  # [min, max] area kept by RandomResizedCrop; empty: off
    mixup: float = 0.0  # timm Mixup: Beta(alpha, alpha) of the mix weight; 0: off
    cutmix: float = 0.0  # timm CutMix alpha; with mixup too, each batch uses one of them (half the batches each)
    mix_prob: float = 1.0  # share of batches mixed when mixup or cutmix is on


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the Lightning trainer."""

    epochs: int = 10
    batch_size: int = 32
    optim: OptimConfig = field(default_factory=OptimConfig)
    early_stopping_patience: int = 0  # 0 disables early stopping
    monitor: Literal["val_auc", "val_loss"] = "val_auc"  # the validation metric checkpoints and early stopping follow
    class_balance: Literal["none", "loss", "sampler"] = "loss"
    label_smoothing: float = 0.0
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"  # focal: (1 - p_t)**focal_gamma down-weights easy images
    focal_gamma: float = 2.0
    ema_decay: float = 0.0  # >0: validate, checkpoint and predict with an EMA of the weights (medfit.train.averaging)
    swa_epochs: int = 0  # >0: the same with the equal-weight average of the weights over the last this many epochs
    swa_lr: float = 0.0  # >0: constant learning rate during the SWA epochs; 0: keep the schedule
    layer_decay: float = 0.0  # in (0, 1): layer-wise LR decay (timm), block i of n at lr * layer_decay**(n - i)
    progressive_resize: list[float] = field(default_factory=list)  # [start scale, share of epochs to full size]
    accelerator: str = "cpu"
    devices: Union[int, str] = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Precision = "32-true"
    # csv and none: no MLflow; the CSV training log (the report's training curve reads it) is always written
    logger: Literal["mlflow", "csv", "none"] = "mlflow"
    mlflow_uri: str = ""  # empty: a local SQLite store <output_dir>/mlflow.db
    progress_bar: bool = True
    max_time_minutes: float = 0.0  # >0: stop training after this wall time
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seeds: list[int] = field(default_factory=list)  # >1 seeds: a deep ensemble of one member per seed (medfit.train.ensemble)


@dataclass(frozen=True)
class EvaluateConfig:
    """How predictions become metrics."""

    threshold: Literal["youden", "fixed", "sensitivity", "specificity"] = "youden"
    threshold_value: float = 0.5  # the fixed threshold, or the target sensitivity/specificity
    bootstrap: int = 1000
    ci_level: float = 0.95
    temperature_scaling: bool = False  # fit a temperature on val; the metrics add calibration after scaling
    domain_classifier: bool = True  # shift check: can a model tell val inputs from test inputs (medfit.evaluate.shift)
    ordinal: bool = False  # multiclass classes are ordered grades: Cohen's kappa with quadratic weights
    # the evidence sections (medfit.evaluate.evidence; docs/EVALUATION.md)
    conformal_alpha: float = 0.1  # conformal sets calibrated on val at this error rate; 0 disables
    conformal_method: Literal["lac", "aps", "raps"] = "lac"
    conformal_mondrian: Literal["none", "class", "site"] = "none"  # calibrate within each class or each site
    decision_thresholds: list[float] = field(default_factory=lambda: [0.01, 0.99, 0.01])  # decision curve: start, stop, step
    subgroups: list[str] = field(default_factory=list)  # manifest columns to report performance by (site, sex, ...)
    subgroup_patterns: dict = field(default_factory=dict)  # name -> regex on the image path; its first group is the subgroup
    subgroup_min_class: int = 10  # warn for a subgroup with fewer positives or negatives than this
    referral_rates: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])  # risk-coverage numbers at these rates
    target_auc_halfwidth: float = 0.05  # sample size: the test n whose AUC CI half-width is this
    mc_dropout: int = 0  # >1: this many stochastic passes with dropout on; the prediction is their mean, with a spread
    tta: list[str] = field(default_factory=list)  # test-time augmentation views: hflip, vflip, shift, augment
    tta_strength: float = 0.5  # shift and augment views: this share of the training augmentation's ranges
    tta_samples: int = 4  # augment: random views per image


def _vlm_optim() -> OptimConfig:
    return OptimConfig(lr=2e-4, weight_decay=0.0, grad_clip=1.0, scheduler="none", warmup_epochs=0.0)


def _vlm_lora() -> LoraConfig:
    return LoraConfig(dropout=0.05, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"])


@dataclass(frozen=True)
class VLMConfig:
    """A vision-language model used as a classifier, scored by its option tokens (``medfit vlm``, medfit.models.vlm)."""

    model: str = ""  # weight source (medfit.models.weights): a Hugging Face model folder, or hf-hub:ORG/REPO
    cache_dir: str = ""  # HF cache to look in; empty: $HF_HUB_CACHE or ~/.cache/huggingface/hub
    question: str = "What does this image show?"
    options: list[str] = field(default_factory=list)  # one description per class, in class order; empty: class names
    option_letters: list[str] = field(default_factory=list)  # empty: A, B, C, ...
    prompt: str = "{question}\nOptions:\n{options}"  # the user turn; {options} is one "A: description" per line
    answer_prefix: str = "Answer:"  # text after the prompt; each option is scored right after it (after a space)
    answer: Literal["letter", "text"] = "letter"  # score the option letters or the option texts (summed log-probs)
    chat_template: bool = True  # wrap the prompt in the processor's chat template when it has one
    finetune: Literal["none", "lora"] = "lora"  # none: zero-shot
    lora: LoraConfig = field(default_factory=_vlm_lora)
    lora_vision: bool = False  # also adapt every linear layer of the vision tower
    epochs: int = 1
    max_steps: int = 0  # >0: stop after this many optimiser steps
    batch_size: int = 4
    grad_accum_steps: int = 1  # optimiser step every this many batches
    optim: OptimConfig = field(default_factory=_vlm_optim)
    class_balance: bool = True  # weight the loss by inverse class frequency
    gradient_checkpointing: bool = False
    precision: Precision = "auto"
    device: str = "auto"  # auto: cuda when available, else cpu
    eval_batch_size: int = 8


@dataclass(frozen=True)
class TuneStage:
    """One stage of the staged hyperparameter search (medfit.tune.stages)."""

    name: str = ""
    params: list[str] = field(default_factory=list)  # config keys searched in this stage, each declared in tune.space
    trials: int = 10  # finished trials (complete or pruned) the stage needs
    epochs: int = 0  # train.epochs of this stage's trials; 0 keeps the config's
    narrow: dict = field(default_factory=dict)  # key -> factor f: search [best/f, best*f] around the previous best
    seeds: int = 0  # >0: no search; train the best config once per seed (seed, seed+1, ...) for the seed table
    early_stopping_patience: int = -1  # >=0 overrides train.early_stopping_patience
    prune: bool = True


def default_tune_space() -> dict:
    """The built-in search space: config key -> {type, low, high, log, choices}."""
    return {
        "train.optim.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "train.optim.weight_decay": {"type": "float", "low": 1e-6, "high": 0.3, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [16, 32, 64]},
        "model.lora.r": {"type": "categorical", "choices": [4, 8, 16, 32]},
        "train.optim.scheduler": {"type": "categorical", "choices": ["cosine", "none"]},
        "train.optim.warmup_epochs": {"type": "float", "low": 0.0, "high": 3.0},
    }


def default_tune_stages() -> list[TuneStage]:
    """The four-stage plan: broad LR, narrow LR + regularisation, scheduler, seeds with early stopping."""
    return [
        TuneStage(name="lr", params=["train.optim.lr"], trials=12, epochs=3),
        TuneStage(name="regularisation",
                  params=["train.optim.lr", "train.optim.weight_decay", "train.batch_size", "model.lora.r"],
                  trials=16, epochs=8, narrow={"train.optim.lr": 3.0}),
        TuneStage(name="schedule", params=["train.optim.scheduler", "train.optim.warmup_epochs"], trials=8, epochs=8),
        TuneStage(name="seeds", trials=0, epochs=20, seeds=5, early_stopping_patience=5, prune=False),
    ]


@dataclass(frozen=True)
class TuneConfig:
    """Staged Optuna search (``medfit tune``): the space, the stages and their budgets, storage and pruning."""

    storage: str = ""  # any SQLAlchemy URL; empty: a SQLite file in <output_dir>/tune/<study>/
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"  # on the validation AUC reported each epoch
    pruner_startup_trials: int = 3  # median: trials finished before any is pruned
    pruner_warmup_epochs: int = 1  # median: epochs a trial runs before it may be pruned
    heartbeat_seconds: float = 60.0  # a trial silent for twice this long was a killed worker's: failed and retried
    keep_checkpoints: bool = False  # trial checkpoints are deleted once scored (the seed stage keeps them)
    space: dict = field(default_factory=default_tune_space)
    stages: list[TuneStage] = field(default_factory=default_tune_stages)


@dataclass(frozen=True)
class AuditConfig:
    """Dataset audit before training (see medfit.audit): duplicates, split leaks, label conflicts, shortcut signals."""

    enabled: bool = True
    dedupe: bool = False  # drop the training-side copies of cross-split duplicates and leaked ids instead of stopping
    near_duplicates: bool = True  # also look for resized / re-encoded / cropped copies (perceptual hash)
    near_threshold: int = 32  # max Hamming distance of 255 hash bits to call two images near-duplicates
    shortcut_auc: float = 0.95  # warn when metadata and intensity statistics alone predict a class this well
    workers: int = 0  # processes for hashing; 0: up to 4, by CPU count
    cache_dir: str = ""  # empty: <preprocess cache dir or <output_dir>/.cache>/audit
    ood: bool = True  # after training: an out-of-distribution gate on the network's pooled features (medfit.train.ood)
    ood_fpr: float = 0.05  # share of validation images the gate may call outside: sets its distance threshold


def _pretrain_optim() -> OptimConfig:
    return OptimConfig(lr=5e-4, weight_decay=0.05, warmup_epochs=5.0, grad_clip=3.0)


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised ViT pretraining on the manifest's images, labels ignored (``medfit pretrain``, medfit.pretrain)."""

    objectives: list[str] = field(default_factory=lambda: ["mae", "dino", "boxloc"])  # cycled batch by batch, in order
    splits: list[str] = field(default_factory=lambda: ["train"])  # manifest splits whose images are pretrained on
    epochs: int = 100
    max_steps: int = 0  # >0: stop after this many optimiser steps
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=_pretrain_optim)
    pos_embed: Literal["learned", "sincos", "log_sincos"] = "learned"  # sincos kinds are fixed while pretraining
    window_size: int = 0  # >0: ViTDet windowed attention, windows of this many patches per side
    global_every: int = 3  # with windows: every this-many-th block, counted back from the last, attends globally
    mask_ratio: float = 0.75  # MAE
    norm_pix_loss: bool = False  # MAE: reconstruct per-patch normalised pixels
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    dino_out_dim: int = 4096  # DINO head prototypes
    dino_hidden_dim: int = 512
    dino_bottleneck_dim: int = 128
    teacher_momentum: float = 0.996  # EMA momentum at the start, cosine to 1 at the end
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    student_temp: float = 0.1
    global_crop_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])  # area fractions
    local_crop_scale: list[float] = field(default_factory=lambda: [0.05, 0.4])
    local_crops: int = 4
    local_crop_size: int = 0  # pixels; 0: half the image size, rounded to whole patches
    box_scale: list[float] = field(default_factory=lambda: [0.04, 0.25])  # box localisation: query region area fractions
    query_size: int = 0  # pixels the query region is resized to; 0: half the image size, rounded to whole patches
    probe: bool = True  # after pretraining: linear-probe and k-NN AUC on the labelled splits
    probe_split: str = ""  # split scored by the probes; empty: test if present, else val
    knn_k: int = 20
    pictures: int = 8  # images in the MAE reconstruction and attention-map figures


@dataclass(frozen=True)
class VolumeConfig:
    """A study (volume) as the unit of prediction: input mode, key slice, neighbours, combine rule (medfit.data.studies)."""

    mode: Literal["slice", "2.5d", "slice_set", "3d"] = "slice"  # slice: 2D rows as given (key slice + offsets)
    key_slice: Literal["given", "mask", "centre"] = "given"  # given: manifest slice_index (centre when empty)
    mask_label: int = 0  # key slice from the mask: this label's largest area (0: the row's roi_label, else any label)
    neighbours: int = 0  # k slices each side of the key slice (2.5d channels; slice mode: extra rows per study)
    augmented_prediction: bool = False  # slice mode: predict key +- k and combine per study
    combine: Literal["mean_prob", "max", "mean_logit"] = "mean_prob"
    slices: int = 0  # slice_set / 3d: resample the slice axis to this many slices (0: image_size)
    stride: int = 0  # slice_set / 3d: >0 takes `slices` slices this many apart around the middle slice (the slice
    # count after the recipe's volume ops, e.g. sagittal after ct-sagittal); 0 spreads them over the whole study
    aggregator: Literal["attention", "gru", "transformer"] = "attention"  # slice_set: gated-attention MIL (unordered),
    # or a bidirectional GRU / small transformer over the slice embeddings in slice order (medfit.models.sequence)
    mil_hidden: int = 128  # slice_set: width of the aggregator (attention layer, GRU state, transformer model)


@dataclass(frozen=True)
class CovariatesConfig:
    """Clinical covariates beside the image (medfit.data.covariates): manifest columns encoded on the training rows
    and fused late with the image embedding (concatenation + a small MLP, medfit.models.covariates)."""

    numeric: list[str] = field(default_factory=list)  # e.g. [age, bmd_t_score]: standardised with the train mean/sd
    categorical: list[str] = field(default_factory=list)  # e.g. [sex, level]: one-hot over the train categories
    hidden: int = 64  # width of the fusion MLP's hidden layer
    dropout: float = 0.1


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: data, preprocessing, model, training and evaluation."""

    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    covariates: CovariatesConfig = field(default_factory=CovariatesConfig)
