"""Tune outputs: the best config YAML, the seed table, Optuna's plots as PNGs and one HTML page."""
from __future__ import annotations

import base64
import html
import json
import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import optuna.visualization.matplotlib as vis  # noqa: E402
import pandas as pd
from optuna.trial import TrialState

from medfit.config import ExperimentConfig, config_to_dict, updated
from medfit.config.secrets import masked_url, masked_yaml
from medfit.report.page import STYLE
from medfit.tune.search import counts, open_storage, stage_base, stage_study_name, storage_url, study_folder

PLOTS = {
    "history": "plot_optimization_history",
    "importances": "plot_param_importances",
    "slice": "plot_slice",
    "intermediate": "plot_intermediate_values",
}


def save_stage_plots(study: optuna.Study, folder: Path, prefix: str) -> dict[str, Path]:
    """Optuna's matplotlib history, importance, slice and intermediate-value plots of one stage, as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    for kind, fn in PLOTS.items():
        if kind == "intermediate" and not reported:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(vis, fn)(study)
        except (ValueError, RuntimeError, ZeroDivisionError):  # too few finished trials for this plot
            plt.close("all")
            continue
        fig = np.atleast_1d(ax).ravel()[0].figure
        path = folder / f"{prefix}-{kind}.png"
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
        os.replace(tmp, path)
        plt.close(fig)
        out[kind] = path
    return out


def seed_table(study: optuna.Study) -> pd.DataFrame:
    """One row per completed seed trial (seed, val_auc, test_auc, epochs_run), plus mean and sd rows."""
    rows = [{"seed": t.params["seed"], "val_auc": t.user_attrs.get("val_auc"), "test_auc": t.user_attrs.get("test_auc"),
             "epochs_run": t.user_attrs.get("epochs_run"), "run_dir": t.user_attrs.get("run_dir")}
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    table = pd.DataFrame(rows, columns=["seed", "val_auc", "test_auc", "epochs_run", "run_dir"])
    return table.sort_values("seed").drop_duplicates("seed").reset_index(drop=True)


def mean_sd(values: pd.Series) -> str:
    """``mean ± sd`` (sample sd) of the non-missing values."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "–"
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():.4f} ± {sd:.4f}"


def best_config(cfg: ExperimentConfig, storage, study: str) -> ExperimentConfig:
    """The config with every search stage's best values and the seed stage's training length."""
    best = stage_base(cfg, storage, study, len(cfg.tune.stages))
    last = cfg.tune.stages[-1]
    changes = {"name": f"{cfg.name}-tuned"}
    if last.epochs:
        changes["train.epochs"] = last.epochs
    if last.early_stopping_patience >= 0:
        changes["train.early_stopping_patience"] = last.early_stopping_patience
    return updated(best, changes)


def _img(path: Path, alt: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def write_outputs(cfg: ExperimentConfig, study: str, storage_override: str | None = None) -> dict:
    """Write the best config, the seed table, the summary, the plots and the report into the study folder (atomically:
    several tuners may finish at once)."""
    folder = study_folder(cfg, study)
    out = folder.path
    storage = open_storage(storage_url(cfg, study, storage_override), cfg.tune.heartbeat_seconds)
    summary: dict = {"study": study, "stages": []}
    sections = []
    seeds = None
    for i, stage in enumerate(cfg.tune.stages):
        s = optuna.load_study(study_name=stage_study_name(study, i, stage.name), storage=storage)
        done = s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        entry = {"name": stage.name, "study": s.study_name, "trials": counts(s), "budget": stage.seeds or stage.trials}
        body = ""
        if stage.seeds:
            seeds = seed_table(s)
            folder.write_csv("seeds", seeds)
            entry["val_auc"], entry["test_auc"] = mean_sd(seeds["val_auc"]), mean_sd(seeds["test_auc"])
            body = seeds.drop(columns="run_dir").to_html(index=False, float_format="%.4f", na_rep="–")
            body += f"<p>validation AUC {entry['val_auc']}, test AUC {entry['test_auc']} (mean ± sd over seeds)</p>"
        elif done:
            best = max(done, key=lambda t: (t.value, -t.number))
            entry |= {"best_value": best.value, "best_params": best.params, "best_trial": best.number,
                      "best_test_auc": best.user_attrs.get("test_auc")}
            plots = save_stage_plots(s, folder.plots, f"{i + 1}-{stage.name}")
            entry["plots"] = {k: str(p.relative_to(out)) for k, p in plots.items()}
            params = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" if isinstance(v, float) else
                             f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in best.params.items())
            body = (f"<p>best validation AUC {best.value:.4f} (trial {best.number})</p>"
                    f"<table><tr><th>parameter</th><th>best</th></tr>{params}</table>"
                    f"<div class=figs>{''.join(_img(p, k) for k, p in plots.items())}</div>")
        states = ", ".join(f"{n.lower()} {c}" for n, c in sorted(entry["trials"].items()))
        sections.append(f"<h2>Stage {i + 1}: {html.escape(stage.name)}</h2><p class=muted>{states}; "
                        f"budget {entry['budget']}</p>{body}")
        summary["stages"].append(entry)

    best = best_config(cfg, storage, study)
    best_path = folder.write_text("best_config", masked_yaml(config_to_dict(best)))
    summary["best_config"] = str(best_path)
    if seeds is not None:
        summary["seeds"] = seeds.drop(columns="run_dir").to_dict(orient="records")
    folder.write_json("summary", json.loads(json.dumps(summary, default=str)))
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>medfit tune {html.escape(study)}</title>"
            f"<style>{STYLE}</style></head><body><h1>Hyperparameter search: {html.escape(study)}</h1>"
            f"<p class=muted>config {html.escape(cfg.name)}; storage {html.escape(masked_url(storage.url))}</p>"
            + "".join(sections)
            + f"<h2>Best config</h2><pre>{html.escape(best_path.read_text())}</pre></body></html>")
    folder.write_text("report", page)
    return summary
