"""Staged search on real PneumoniaMNIST: two stages beat a deliberately bad starting LR; median pruning per epoch."""
import json
import math

import optuna
import yaml
from optuna.trial import TrialState

from medfit.commands.pipeline import train_run
from medfit.commands.tune import training_objective
from medfit.config import config_from_dict
from medfit.run_folder import StudyFolder
from medfit.tune.objective import train_objective
from medfit.tune.report import write_outputs
from medfit.tune.search import open_storage, run_stage, run_worker, storage_url, study_folder
from medfit.tune.stages import plan_stage

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
BAD_LR = 1e-6


def tiny_config(shared_data, tmp_path, stages, **tune):
    return config_from_dict({
        "name": "pmnist-tune", "seed": 3, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "channels": 1,
                 "limit_per_split": 128},
        "model": {"name": "test_resnet"},
        "train": {"epochs": 2, "batch_size": 32, "optim": {"lr": BAD_LR, "scheduler": "none"}, "logger": "csv",
                  "augment": {"rotate_degrees": 0, "translate": 0.0}},
        "tune": {"space": {"train.optim.lr": {"type": "float", "low": 1e-6, "high": 3e-2, "log": True}},
                 "stages": stages, **tune},
    })


def test_two_stage_search_ends_far_better_than_a_bad_starting_lr(shared_data, tmp_path):
    cfg = tiny_config(shared_data, tmp_path, [
        {"name": "lr", "params": ["train.optim.lr"], "trials": 3, "epochs": 2},
        {"name": "wd", "params": ["train.optim.lr", "train.optim.weight_decay"], "trials": 2, "epochs": 1,
         "narrow": {"train.optim.lr": 3.0}},
    ], pruner="none")
    names = run_worker(cfg, "two", objective=training_objective("two", cfg, None))
    storage = open_storage(storage_url(cfg, "two"), 60)
    s1, s2 = (optuna.load_study(study_name=n, storage=storage) for n in names)
    assert [t.state for t in s1.trials] == [TrialState.COMPLETE] * 3 and len(s2.trials) == 2
    baseline = s1.trials[0]  # stage 1 starts from the config's own (bad) LR
    assert baseline.params == {"train.optim.lr": BAD_LR}
    best1 = s1.best_trial
    # stage 2 is seeded with stage 1's best and searches LR only within a factor 3 of it
    assert s2.trials[0].params["train.optim.lr"] == best1.params["train.optim.lr"]
    for t in s2.trials:
        assert best1.params["train.optim.lr"] / 3 * 0.999 <= t.params["train.optim.lr"] <= best1.params["train.optim.lr"] * 3 * 1.001
    final = max(s2.trials, key=lambda t: t.value)
    seen = [(t.params["train.optim.lr"], t.value, t.user_attrs["test_auc"]) for t in s1.trials + s2.trials]
    assert final.value >= baseline.value + 0.15, seen
    assert final.user_attrs["test_auc"] >= baseline.user_attrs["test_auc"] + 0.1, seen  # not a validation-only gain

    summary = write_outputs(cfg, "two")
    out = study_folder(cfg, "two").path
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["train"]["optim"]["lr"] == final.params["train.optim.lr"] != BAD_LR
    assert best["train"]["optim"]["weight_decay"] == final.params["train.optim.weight_decay"]
    for stage in ("1-lr", "2-wd"):
        for kind in ("history", "importances", "slice"):
            assert (out / "plots" / f"{stage}-{kind}.png").stat().st_size > 5000, (stage, kind)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6 and "Best config" in page
    assert json.loads((out / "summary.json").read_text())["stages"][1]["best_value"] == summary["stages"][1]["best_value"]


def test_median_pruner_stops_a_hopeless_trial_after_its_first_epoch(shared_data, tmp_path):
    cfg = tiny_config(shared_data, tmp_path, [{"name": "lr", "params": ["train.optim.lr"], "trials": 3, "epochs": 2}])
    plan = plan_stage(cfg, 0, cfg)
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    for lr in (3e-3, 1e-2, BAD_LR):
        study.enqueue_trial({"train.optim.lr": lr})
    fit_trial = lambda trial_cfg, callbacks: train_run(trial_cfg, callbacks=callbacks)  # noqa: E731
    run_stage(study, plan, lambda trial, p: train_objective(trial, p, StudyFolder(tmp_path / "tune"), fit_trial))
    good, good2, bad = study.trials
    assert good.state == good2.state == TrialState.COMPLETE
    assert sorted(good.intermediate_values) == [0, 1]  # one report per epoch
    assert bad.state == TrialState.PRUNED and list(bad.intermediate_values) == [0]
    median = sorted([good.intermediate_values[0], good2.intermediate_values[0]])
    assert bad.intermediate_values[0] < (median[0] + median[1]) / 2
    assert not math.isnan(bad.intermediate_values[0])
    assert not (tmp_path / "tune" / "trials" / "1-lr-002" / "predictions.csv").exists()  # stopped before predicting
    assert (tmp_path / "tune" / "trials" / "1-lr-000" / "predictions.csv").is_file()
    assert not (tmp_path / "tune" / "trials" / "1-lr-000" / "checkpoints").exists()  # trial checkpoints dropped
