"""Tune workers on shared storage: two processes on one SQLite study lose and duplicate nothing; a killed tuner resumes.

The trial here is a logistic regression on real PneumoniaMNIST pixels (C searched as ``train.optim.lr``): the properties
under test are the claim/heartbeat/retry logic of medfit.tune.search, and training a network per trial would cost
the suite a minute more (tests/test_tune.py drives the real ``train``). Workers are forked so that each starts in
milliseconds instead of re-importing the stack."""
import multiprocessing
import os
import signal
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medfit.config import config_from_dict
from medfit.tune.search import open_storage, run_worker, stage_study_name, storage_url

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def pixels(shared_data):
    data = np.load(shared_data / NPZ)
    out = {}
    for split, n in (("train", 400), ("val", 200)):
        idx = np.random.default_rng(0).permutation(len(data[f"{split}_labels"]))[:n]  # the npz is label-sorted
        out[split] = (data[f"{split}_images"][idx].reshape(n, -1) / 255.0, data[f"{split}_labels"][idx].ravel())
    return out


def logistic_objective(pixels, pause):
    """A cheap real trial: logistic regression with C = train.optim.lr; the seed stage draws its own training subset."""
    (xt, yt), (xv, yv) = pixels["train"], pixels["val"]

    def objective(trial, plan):
        trial.set_user_attr("worker", os.getpid())
        if plan.is_seed_stage:
            seed, c = trial.suggest_categorical("seed", plan.seeds()), plan.base.train.optim.lr
        else:
            d = plan.distributions["train.optim.lr"]
            seed, c = 0, trial.suggest_float("train.optim.lr", d.low, d.high, log=d.log)
        time.sleep(pause)  # long enough to be killed in the middle of, and for both workers to take part
        keep = np.random.default_rng(seed).permutation(len(yt))[:240]
        model = LogisticRegression(C=c, max_iter=100).fit(xt[keep], yt[keep])
        return float(roc_auc_score(yv, model.predict_proba(xv)[:, 1]))
    return objective


def tune_config(tmp_path, stages, heartbeat=60.0):
    return config_from_dict({
        "name": "lr-workers", "seed": 5, "output_dir": str(tmp_path / "runs"), "train": {"optim": {"lr": 1e-4}},
        "tune": {"heartbeat_seconds": heartbeat, "stages": stages,
                 "space": {"train.optim.lr": {"type": "float", "low": 1e-4, "high": 10.0, "log": True}}}})


def worker_process(cfg, study, index, objective, barrier=None):
    def main():
        if barrier is not None:
            barrier.wait(30)
        run_worker(cfg, study, worker=index, objective=objective)
    proc = FORK.Process(target=main)
    proc.start()
    return proc


def test_two_worker_processes_share_one_sqlite_study_without_losing_or_duplicating(pixels, tmp_path):
    cfg = tune_config(tmp_path, [{"name": "lr", "params": ["train.optim.lr"], "trials": 6}, {"name": "seeds", "seeds": 3}])
    open_storage(storage_url(cfg, "par"), 60)  # the schema, created once before the workers start (as `medfit tune` does)
    barrier = FORK.Barrier(2)
    procs = [worker_process(cfg, "par", i, logistic_objective(pixels, 0.2), barrier) for i in range(2)]
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    storage = open_storage(storage_url(cfg, "par"), 60)
    search = optuna.load_study(study_name=stage_study_name("par", 0, "lr"), storage=storage)
    done = search.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6 and len({t.number for t in done}) == 6  # the budget exactly: none lost, none extra
    assert all(t.user_attrs.get("over_budget") for t in search.get_trials(states=(TrialState.FAIL,)))
    assert not search.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert {t.user_attrs["worker"] for t in done} == {p.pid for p in procs}  # both processes ran trials
    seeds = optuna.load_study(study_name=stage_study_name("par", 1, "seeds"), storage=storage)
    assert sorted(t.params["seed"] for t in seeds.get_trials(states=(TrialState.COMPLETE,))) == [5, 6, 7]


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_killed_tuner_resumes_its_study_and_retries_the_interrupted_trial(pixels, tmp_path):
    cfg = tune_config(tmp_path, [{"name": "lr", "params": ["train.optim.lr"], "trials": 4}], heartbeat=1.0)
    url, name = storage_url(cfg, "resume"), stage_study_name("resume", 0, "lr")
    storage = open_storage(url, 1)

    def trials():
        try:
            return optuna.load_study(study_name=name, storage=storage).trials
        except KeyError:  # the study is not created yet
            return []

    first = worker_process(cfg, "resume", 0, logistic_objective(pixels, 0.5))
    assert wait_for(lambda: [t.state for t in trials()].count(TrialState.COMPLETE) >= 2
                    and trials()[-1].state == TrialState.RUNNING and trials()[-1].params)  # mid-trial
    os.kill(first.pid, signal.SIGKILL)
    first.join()
    before = trials()
    killed = before[-1]
    assert killed.state == TrialState.RUNNING  # left behind by the dead process
    finished_before = {t.number: t.datetime_complete for t in before if t.state == TrialState.COMPLETE}

    time.sleep(2.5)  # past the heartbeat grace period (2 beats of 1 s), as for a tuner restarted later
    run_worker(cfg, "resume", objective=logistic_objective(pixels, 0.0))  # the restarted tuner
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert study.trials[killed.number].state == TrialState.FAIL  # failed once its heartbeat went stale
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params  # the interrupted trial ran again, once
    for number, finished in finished_before.items():  # earlier trials kept, not rerun
        assert study.trials[number].datetime_complete == finished
    assert len(study.trials) == 5

    run_worker(cfg, "resume", objective=lambda trial, plan: pytest.fail("a finished study ran another trial"))
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == 5
