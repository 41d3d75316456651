"""Run the staged search: one Optuna study per stage in shared storage, workers that claim trials within the budget."""
from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy.exc
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from medfit.config import ExperimentConfig
from medfit.config.secrets import masked_url
from medfit.errors import ConfigError
from medfit.run_folder import StudyFolder, check_run_name
from medfit.tune.drivers import driver_url
from medfit.tune.space import with_params
from medfit.tune.stages import StagePlan, check_plan, plan_stage

log = logging.getLogger("medfit")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)

Objective = Callable[[optuna.Trial, StagePlan], float]


class OverBudget(Exception):
    """A trial created after the stage's budget was already claimed by other workers (it is marked failed)."""


def study_folder(cfg: ExperimentConfig, study: str) -> StudyFolder:
    """The study's folder: <output_dir>/tune/<study> (the study name checked to be a plain folder name)."""
    return StudyFolder(Path(cfg.output_dir) / "tune" / check_run_name(study))


def storage_url(cfg: ExperimentConfig, study: str, override: str | None = None) -> str:
    """The storage URL: --storage, else tune.storage, else a SQLite file in the study's folder."""
    url = override or cfg.tune.storage
    if url:
        return url
    path = study_folder(cfg, study).file("storage").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(url: str, heartbeat_seconds: float) -> optuna.storages.RDBStorage:
    """RDB storage with a heartbeat: a killed worker's running trial is failed after 2 beats and retried once."""
    # heartbeat, retry and multivariate TPE are marked experimental in Optuna 5; we rely on them knowingly
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 120}  # several worker processes write to one file
    beat, engine_url = max(1, int(round(heartbeat_seconds))), driver_url(url)
    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(
                engine_url, engine_kwargs=kwargs, heartbeat_interval=beat, grace_period=2 * beat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
        except Exception as exc:  # SQLAlchemy raises many types; all mean the URL or server is unusable
            if attempt < 3 and isinstance(exc, sqlalchemy.exc.DBAPIError):
                time.sleep(0.5)  # workers started together may race to create the schema; it exists by now
                continue
            raise ConfigError(f"--storage {masked_url(url)}: cannot open the study storage ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}); check the URL, driver and server") from None
    raise AssertionError("unreachable")


def stage_study_name(study: str, plan_or_index: StagePlan | int, name: str = "") -> str:
    """The Optuna study of one stage: <study>.<n>-<stage name>."""
    if isinstance(plan_or_index, StagePlan):
        return f"{study}.{plan_or_index.index + 1}-{plan_or_index.stage.name}"
    return f"{study}.{plan_or_index + 1}-{name}"


def best_params(study: optuna.Study) -> dict[str, Any]:
    """The best finished trial's parameters (config keys -> values)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        raise ConfigError(f"study {study.study_name}: no trial completed (all pruned or failed); "
                          "widen the range or relax the pruner (tune.pruner: none)")
    return dict(max(done, key=lambda t: (t.value, -t.number)).params)


def stage_base(cfg: ExperimentConfig, storage, study: str, index: int) -> ExperimentConfig:
    """The user's config with the best values of every search stage before ``index`` applied."""
    params: dict[str, Any] = {}
    for i, stage in enumerate(cfg.tune.stages[:index]):
        if stage.seeds:
            continue
        prev = optuna.load_study(study_name=stage_study_name(study, i, stage.name), storage=storage)
        params.update(best_params(prev))
    return with_params(cfg, params)


def _signature(plan: StagePlan) -> str:
    return json.dumps({k: json.loads(distribution_to_json(d)) for k, d in sorted(plan.distributions.items())}
                      | {"seeds": plan.seeds() if plan.is_seed_stage else [], "budget": plan.budget}, sort_keys=True)


def open_stage(storage, study: str, plan: StagePlan) -> optuna.Study:
    """Create the stage's study (exactly one process wins and enqueues its fixed trials) or load it."""
    name = stage_study_name(study, plan)
    try:
        s = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=False)
        s.set_user_attr("plan", _signature(plan))
        if plan.is_seed_stage:
            for seed in plan.seeds():
                s.enqueue_trial({"seed": seed}, skip_if_exists=True)
        elif plan.start:  # the stage starts from the previous best (or, in stage 1, the config's own values)
            s.enqueue_trial(plan.start, skip_if_exists=True)
    except optuna.exceptions.DuplicatedStudyError:
        s = optuna.load_study(study_name=name, storage=storage)
        saved = s.user_attrs.get("plan")
        if saved is not None and saved != _signature(plan):
            raise ConfigError(f"study {name}: was started with another search space or budget for stage "
                              f"{plan.stage.name!r}; continue it with the same config or pick a new --study name")
    return s


def make_sampler(cfg: ExperimentConfig, plan: StagePlan, seed: int) -> optuna.samplers.BaseSampler:
    """Seed stage: a grid over seeds; search stages: TPE (multivariate, constant liar for parallel workers) or random."""
    if plan.is_seed_stage:
        return optuna.samplers.GridSampler({"seed": plan.seeds()}, seed=seed)
    if cfg.tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, plan.budget // 3)),
                                          multivariate=True, constant_liar=True)


def make_pruner(cfg: ExperimentConfig, plan: StagePlan) -> optuna.pruners.BasePruner:
    """Median or Hyperband pruning on the per-epoch validation AUC; none in seed stages."""
    if plan.is_seed_stage or not plan.stage.prune or cfg.tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.tune.pruner == "hyperband":
        epochs = plan.stage.epochs or cfg.train.epochs
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.tune.pruner_startup_trials,
                                       n_warmup_steps=cfg.tune.pruner_warmup_epochs)


class _QuietOverBudget(logging.Filter):
    """Drops Optuna's traceback for trials refused by ``claim`` (an expected race, not an error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "OverBudget" not in msg and not msg.endswith("failed with value None.")


def claim(trial: optuna.Trial, budget: int) -> None:
    """Raise OverBudget unless fewer than ``budget`` live trials precede this one (trial numbers are atomic)."""
    before = [t for t in trial.study.get_trials(deepcopy=False, states=LIVE) if t.number < trial.number]
    if len(before) >= budget:
        trial.set_user_attr("over_budget", True)
        raise OverBudget(f"trial {trial.number}: the stage's {budget} trials are already claimed")


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials of a study by state name."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def run_stage(study: optuna.Study, plan: StagePlan, objective: Objective, poll_seconds: float = 0.5) -> None:
    """Run trials of one stage until it has ``plan.budget`` finished (complete or pruned) trials."""
    def wrapped(trial: optuna.Trial) -> float:
        claim(trial, plan.budget)
        return objective(trial, plan)

    while True:
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: FAIL, then re-enqueued (WAITING)
        c = counts(study)
        finished = c.get("COMPLETE", 0) + c.get("PRUNED", 0)
        if finished >= plan.budget:
            return
        live = finished + c.get("RUNNING", 0) + c.get("WAITING", 0)
        if live >= plan.budget and not c.get("WAITING"):
            time.sleep(poll_seconds)  # the rest is running elsewhere (or is a dead worker's, failed once stale)
            continue
        study.optimize(wrapped, n_trials=1, catch=(OverBudget,), gc_after_trial=False)


def run_worker(cfg: ExperimentConfig, study: str, storage_override: str | None = None, worker: int = 0,
               objective: Objective | None = None) -> list[str]:
    """Walk the stages in order, each from the previous stages' best; returns the stage study names."""
    check_plan(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietOverBudget) for f in quiet.filters):
        quiet.addFilter(_QuietOverBudget())
    url = storage_url(cfg, study, storage_override)
    storage = open_storage(url, cfg.tune.heartbeat_seconds)
    if objective is None:
        raise ConfigError("tune: no trial objective given (medfit.commands.tune builds the training one)")
    names = []
    for index in range(len(cfg.tune.stages)):
        plan = plan_stage(cfg, index, stage_base(cfg, storage, study, index))
        s = open_stage(storage, study, plan)
        s.sampler = make_sampler(cfg, plan, cfg.seed * 1_000_003 + index * 10_007 + worker * 101 + len(s.trials))
        s.pruner = make_pruner(cfg, plan)
        run_stage(s, plan, objective, poll_seconds=min(0.5, cfg.tune.heartbeat_seconds))
        names.append(s.study_name)
    return names
