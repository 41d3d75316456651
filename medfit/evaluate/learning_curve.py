"""Learning curve: train on growing shares of the training patients (10/25/50/100 %, grouped by patient and
stratified by the patient's label, several seeds), score every model on the same validation and test cases, and say
whether the test AUC has flattened (medfit.evaluate.sample_size.learning_curve_summary).

Each point's AUC is the mean over seeds; its CI adds the test-set sampling variance (the mean over seeds of each
run's squared AUC standard error, from its DeLong CI, else its bootstrap CI) to the seed variance of the mean
(sd^2 / seeds): SE = sqrt(mean SE_i^2 + sd^2 / k). The seeds share one test set, so their test-sampling errors do not
average out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from medfit.config import ExperimentConfig, updated
from medfit.audit import split_grouper
from medfit.data.manifest import Manifest, build_manifest
from medfit.errors import ConfigError, DataError
from medfit.evaluate.protocols import FitFn, fixed_manifest_config
from medfit.evaluate.sample_size import learning_curve_summary
from medfit.run_folder import ProtocolFolder

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SPLITS = ("val", "test")


def patient_strata(manifest: Manifest) -> pd.Series:
    """Each training patient's stratum: the highest stratum among its rows (binary: positive if any row is)."""
    train = manifest.df[manifest.df["split"] == "train"]
    strata = pd.Series(manifest.target.strata(train), index=train.index)
    return strata.groupby(train["patient_id"].astype(str)).max()


def subsample_patients(manifest: Manifest, fraction: float, seed: int = 0) -> Manifest:
    """Keep ``fraction`` of the training patients of every stratum (at least one each), drawn with ``seed``; the
    other splits are unchanged."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"learning-curve fraction {fraction}: expected a share of the training patients in (0, 1]")
    rng = np.random.default_rng(seed)
    strata = patient_strata(manifest)
    keep = []
    for _, patients in strata.groupby(strata):
        ids = np.sort(patients.index.to_numpy())
        keep += rng.choice(ids, max(1, int(round(fraction * len(ids)))), replace=False).tolist()
    df = manifest.df
    return manifest.with_df(df[(df["split"] != "train") | df["patient_id"].astype(str).isin(set(keep))])


def _se(entry: dict, level: float) -> float | None:
    ci = entry.get("auc_delong_ci") or entry.get("auc_ci")
    if entry.get("auc") is None or not ci or None in ci:
        return None
    return (ci[1] - ci[0]) / (2 * norm.ppf(0.5 + level / 2))


def run_point(cfg: ExperimentConfig, manifest: Manifest, fraction: float, seed: int, out: Path, fit: FitFn) -> dict:
    """Train one model on a share of the training patients; its patients, images and val/test AUCs with SEs."""
    sub = subsample_patients(manifest, fraction, seed)
    name = f"lc{round(100 * fraction):03d}-seed{seed}"
    run = fit(updated(fixed_manifest_config(cfg, sub, name, out), {"seed": seed, "train.seeds": []}))
    metrics = run.read_metrics()
    train = sub.df[sub.df["split"] == "train"]
    row = {"fraction": fraction, "seed": seed, "patients": int(train["patient_id"].nunique()), "images": len(train),
           "run": name}
    for split in SPLITS:
        entry = metrics["splits"].get(split, {})
        row.update({f"{split}_auc": entry.get("auc"), f"{split}_se": _se(entry, cfg.evaluate.ci_level)})
    return row


def curve_points(rows: pd.DataFrame, split: str, level: float = 0.95) -> list[dict]:
    """Per fraction: patients, mean AUC over seeds and its CI (see the module docstring)."""
    z = norm.ppf(0.5 + level / 2)
    points = []
    for fraction, g in rows.groupby("fraction"):
        aucs, ses = g[f"{split}_auc"].dropna().to_numpy(float), g[f"{split}_se"].dropna().to_numpy(float)
        if not len(aucs):
            continue
        sd = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
        se = float(np.sqrt((np.mean(ses ** 2) if len(ses) else 0.0) + sd ** 2 / len(aucs)))
        mean = float(aucs.mean())
        points.append({"fraction": float(fraction), "patients": int(round(g["patients"].mean())), "auc": mean,
                       "ci": [max(0.0, mean - z * se), min(1.0, mean + z * se)], "se": se, "seed_sd": sd,
                       "seeds": int(len(aucs))})
    return points


def learning_curve(cfg: ExperimentConfig, data_dir: str | None, fit: FitFn, fractions=FRACTIONS,
                   seeds=(0, 1, 2)) -> dict:
    """Train at every fraction x seed into ``<output_dir>/<name>-lc/``; write and return the curve and its verdict."""
    fractions = sorted({float(f) for f in fractions})
    manifest = build_manifest(cfg, data_dir, split_grouper(cfg))  # the training run's split draw
    if not (manifest.df["split"] == "test").any():
        raise DataError(f"{cfg.data.root}: no 'test' rows; a learning curve scores every model on one test set")
    out = ProtocolFolder(Path(cfg.output_dir) / f"{cfg.name}-lc")
    rows = pd.DataFrame([run_point(cfg, manifest, f, s, out.path, fit) for f in fractions for s in seeds])
    curves = {split: curve_points(rows, split, cfg.evaluate.ci_level) for split in SPLITS}
    result = {"protocol": f"learning curve: {len(fractions)} shares of the training patients x {len(seeds)} seeds, "
                          "grouped by patient and stratified by label; validation and test fixed",
              "fractions": fractions, "seeds": list(seeds), "ci_level": cfg.evaluate.ci_level, "curves": curves,
              "summary": learning_curve_summary(curves["test"]) if curves["test"] else None, "folder": str(out.path)}
    out.write_csv("learning_curve_table", rows)
    out.write_json("learning_curve", result)
    return result
