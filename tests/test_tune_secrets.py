"""Secrets stay secret: a storage URL's password is never on a worker's command line (visible in `ps`) and never in a
file medfit writes (trial and run configs, best_config.yaml, the summary, the tune report)."""
import argparse
import subprocess

import pytest

import medfit.commands.tune as tune_verb
from medfit.config import config_from_dict
from medfit.run_folder import RunFolder
from medfit.tune.report import write_outputs
from medfit.tune.search import run_worker, storage_url

SECRET = "s3cret-Pw"
URL = f"postgresql://tuner:{SECRET}@db.example:5432/studies"


def test_spawned_workers_get_the_storage_url_by_environment_not_on_their_command_line(monkeypatch):
    started = []

    class Recorder:
        def __init__(self, cmd, env=None, **kwargs):
            started.append((cmd, env))

    monkeypatch.setattr(subprocess, "Popen", Recorder)
    args = argparse.Namespace(config="exp.yaml", study="s", workers=3, data=None, name=None, overrides=[],
                              storage=URL, worker_index=0)
    tune_verb.spawn_workers(args, URL)
    assert len(started) == 2
    for cmd, env in started:
        assert not any(SECRET in part for part in cmd), cmd
        assert env[tune_verb.STORAGE_ENV] == URL
    worker = argparse.Namespace(storage=None)
    monkeypatch.setenv(tune_verb.STORAGE_ENV, URL)
    assert tune_verb.storage_given(worker) == URL


def test_a_run_config_keeps_no_password(tmp_path):
    cfg = config_from_dict({"name": "r", "output_dir": str(tmp_path), "tune": {"storage": URL},
                            "train": {"mlflow_uri": "postgresql://ml:other-Pw@h/mlflow"}})
    run = RunFolder.of(cfg.output_dir, cfg.name)
    run.write_config(cfg)
    text = run.file("config").read_text()
    assert SECRET not in text and "other-Pw" not in text
    again = run.read_config()
    assert again.tune.storage == "postgresql://tuner:***@db.example:5432/studies"
    assert again.train.mlflow_uri == "postgresql://ml:***@h/mlflow"


def test_best_config_summary_and_report_keep_no_password(tmp_path):
    """A real (tiny) study on SQLite, with tune.storage naming a password-protected server as a user's config would."""
    cfg = config_from_dict({
        "name": "sec", "output_dir": str(tmp_path / "runs"), "tune": {"storage": URL, "stages": [
            {"name": "lr", "params": ["train.optim.lr"], "trials": 2}]}})
    local = storage_url(cfg.__class__(output_dir=cfg.output_dir), "s")  # where the study really lives

    def objective(trial, plan):
        return 1.0 / (1.0 + abs(trial.suggest_float("train.optim.lr", 1e-5, 1e-1, log=True) - 1e-3))

    run_worker(cfg, "s", local, objective=objective)
    write_outputs(cfg, "s", local)
    folder = tmp_path / "runs" / "tune" / "s"
    written = {p.name: p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.suffix != ".db"}
    assert {"best_config.yaml", "summary.json", "report.html"} <= set(written)
    assert [name for name, text in written.items() if SECRET in text] == []
    assert "postgresql://tuner:***@db.example:5432/studies" in written["best_config.yaml"]


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
    ("mysql+pymysql://u@h/db?password=x&charset=utf8", "mysql+pymysql://u@h/db?password=***&charset=utf8"),
    ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
])
def test_masked_urls(url, shown):
    from medfit.config.secrets import masked_url

    assert masked_url(url) == shown
