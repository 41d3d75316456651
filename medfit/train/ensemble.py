"""Deep ensembles (Lakshminarayanan et al. 2017): ``train.seeds: [0, 1, 2]`` trains one member per seed in one run.

The first member is the run itself (its checkpoints are the run's, so explain and export use it); each other member
trains into ``members/seed<k>/`` with its own config, checkpoints and training record. Every member sees the same
manifest (the split depends on data.split_seed, not on the seed); they differ in initialisation, data order,
augmentation and dropout. Prediction averages them (medfit.train.uncertainty).
"""
from __future__ import annotations

from medfit.config import ExperimentConfig, updated
from medfit.data.manifest import Manifest
from medfit.errors import DataError
from medfit.models import load_network
from medfit.run_folder import RunFolder
from medfit.train.fit import FitResult, fit


def member_seeds(cfg: ExperimentConfig) -> list[int]:
    """The seed of each member: train.seeds, or the config's seed alone."""
    return list(cfg.train.seeds) or [cfg.seed]


def member_config(cfg: ExperimentConfig, run: RunFolder, seed: int) -> ExperimentConfig:
    """A member's own config: one seed, no ensemble, logged into the run's MLflow store under its own name."""
    store = cfg.train.mlflow_uri or f"sqlite:///{run.path.resolve().parent / 'mlflow.db'}"
    return updated(cfg, {"seed": seed, "train.seeds": [], "name": f"{cfg.name}-seed{seed}", "train.mlflow_uri": store})


def fit_members(cfg: ExperimentConfig, run: RunFolder, manifest: Manifest, resume: bool = False,
                callbacks: list | None = None) -> FitResult | None:
    """Train every member (the first into the run, the others into their folders); None in non-zero ranks."""
    seeds = member_seeds(cfg)
    first = fit(updated(cfg, {"seed": seeds[0]}), run, manifest, resume, callbacks)
    results = [first]
    for seed in seeds[1:]:
        folder = run.member(seed)
        member_cfg = member_config(cfg, run, seed)
        if first is not None:
            folder.write_config(member_cfg)
        datasets = first.datasets if first is not None else None
        results.append(fit(member_cfg, folder, manifest, resume and folder.has_checkpoint, callbacks, datasets))
    if any(r is None for r in results):
        return None
    if len(seeds) > 1:
        first.info["ensemble"] = {"seeds": seeds, "members": [
            {"seed": s, "folder": str(run.member(s).path.relative_to(run.path)) if k else ".", **r.info["timing"]}
            for k, (s, r) in enumerate(zip(seeds, results))]}
        run.write_json("train_info", first.info)
    first.members, first.seeds = [r.model for r in results[1:]], seeds
    return first


def load_members(run: RunFolder) -> tuple[list, list[int]]:
    """A trained run's networks (the run's own, then each member's) and their seeds."""
    seeds = member_seeds(run.read_config())
    for seed in seeds[1:]:
        if not run.member(seed).has_checkpoint:
            raise DataError(f"{run.member(seed).path}: ensemble member (seed {seed}) has no checkpoint; train the run "
                            "again, or resume it (medfit train CONFIG --resume)")
    return [load_network(run), *(load_network(run.member(s)) for s in seeds[1:])], seeds
