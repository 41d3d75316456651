"""Validation protocols: patient-grouped stratified k-fold cross-validation and external validation by site."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medfit.audit import split_grouper
from medfit.audit.label_issues import label_issue_summary, label_issue_table
from medfit.audit.run import audit_cache_dir
from medfit.config import ExperimentConfig, updated
from medfit.data.corrections import reviewed_mask
from medfit.data.manifest import Manifest, build_manifest
from medfit.data.splits import assign_validation_split, patient_kfold
from medfit.errors import DataError
from medfit.evaluate.metrics import FOLD_METRICS
from medfit.evaluate.multiclass import ovr_auc
from medfit.evaluate.sites import site_table
from medfit.evaluate.stats import delong_auc_ci
from medfit.run_folder import ProtocolFolder, RunFolder, write_csv

# Trains and evaluates one experiment (its data pointing at a fixed manifest), returns the run folder.
FitFn = Callable[[ExperimentConfig], RunFolder]


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def _patient_number(pid: str) -> tuple:
    """Sort key of a patient id by its first number (split prefixes such as 'train/' or 'test' do not group it)."""
    found = re.search(r"\d+", str(pid).rsplit("/", 1)[-1])
    return (int(found.group()) if found else float("inf"), str(pid))


def assign_pseudo_sites(manifest: Manifest, n_sites: int) -> Manifest:
    """Split patients into ``n_sites`` contiguous patient-id ranges, named ``pseudo-site-K``.

    For data without a site column: a stand-in for multi-centre data (same scanner and hospital, so it
    underestimates a real site shift); every table built from it says so through the ``pseudo-`` names.
    """
    df = manifest.df.copy()
    patients = sorted(df["patient_id"].astype(str).unique(), key=_patient_number)
    if len(patients) < n_sites:
        raise DataError(f"{len(patients)} patients cannot make {n_sites} pseudo-sites")
    site_of = {}
    for k, chunk in enumerate(np.array_split(np.array(patients, dtype=object), n_sites)):
        for pid in chunk:
            site_of[pid] = f"pseudo-site-{k + 1}"
    df["site"] = df["patient_id"].astype(str).map(site_of)
    return manifest.with_df(df)


def fixed_manifest_config(cfg: ExperimentConfig, manifest: Manifest, name: str, out_dir: Path) -> ExperimentConfig:
    """``cfg`` trained on exactly this manifest (written as the run's input CSV, splits as given), named ``name``."""
    csv = ProtocolFolder(out_dir).fold_input(name)
    write_csv(csv, manifest.df)
    return updated(cfg, {"name": name, "output_dir": str(out_dir), "data.source": "csv", "data.root": str(csv.resolve()),
                         "data.image_column": "image", "data.patient_column": "patient_id", "data.site_column": "site",
                         "data.label_columns": list(manifest.label_columns),
                         "data.class_names": list(manifest.class_names), "data.val_fraction": 0.0,
                         "data.limit_per_split": 0, "audit.cache_dir": str(audit_cache_dir(cfg)),
                         "data.corrections": ""})  # applied once, in the manifest written here


def _summary(rows: list[dict]) -> dict:
    table = pd.DataFrame(rows)
    out = {}
    for key in FOLD_METRICS:
        if key in table and table[key].notna().any():
            out[key] = {"mean": float(table[key].mean()), "sd": float(table[key].std(ddof=1)) if len(table) > 1 else 0.0}
    return out


def reviewed_images(df: pd.DataFrame) -> set[str]:
    """Images a reviewer kept (``data.corrections``): not flagged again."""
    return set(df.loc[reviewed_mask(df), "image"].astype(str))


def cross_validate(cfg: ExperimentConfig, folds: int, data_dir: str | None, fit: FitFn, seed: int | None = None) -> dict:
    """Patient-grouped stratified k-fold CV on the development pool (train + val); every fold draws its own val.

    Writes into ``<output_dir>/<name>-cv/``: per-fold test metrics (threshold chosen on the fold's
    val), mean +- sd, the pooled out-of-fold AUC with its DeLong CI, and suspected label issues (cleanlab on the
    out-of-fold probabilities, the folder's label issues table).
    """
    seed = cfg.data.split_seed if seed is None else seed
    grouper = split_grouper(cfg)
    manifest = build_manifest(cfg, data_dir, grouper)
    pool = manifest.df[manifest.df["split"].isin(["train", "val"])].reset_index(drop=True)
    pool_m = manifest.with_df(pool.assign(split="train"))
    # folds and each fold's val keep patients and duplicate groups whole: no leak the audit would stop on
    groups = grouper(pool_m.df) if grouper is not None else None
    units = len(set(groups)) if groups is not None else pool_m.df["patient_id"].nunique()
    if units < folds:
        raise DataError(f"{units} {'patient/duplicate groups' if groups is not None else 'patients'} cannot fill "
                        f"{folds} folds")
    out = ProtocolFolder(Path(cfg.output_dir) / f"{cfg.name}-cv")
    rows, oof = [], []
    val_fraction = cfg.data.val_fraction or 0.1
    for k, (_, test_idx) in enumerate(patient_kfold(pool_m, folds, seed, groups)):
        df = pool_m.df.copy()
        df.loc[test_idx, "split"] = "test"
        fold = assign_validation_split(manifest.with_df(df), val_fraction, seed + k, groups)
        run = fit(fixed_manifest_config(cfg, fold, f"fold{k + 1}", out.path))
        metrics = run.read_metrics()
        test = metrics["splits"]["test"]
        rows.append({"fold": k + 1, "n": test["n"], "patients": int(df.loc[test_idx, "patient_id"].nunique()),
                     "threshold": (metrics.get("threshold") or {}).get("value"),
                     **{m: test.get(m) for m in FOLD_METRICS if m in test}})
        pred = run.read_predictions()
        oof.append(pred[pred["split"] == "test"].assign(fold=k + 1))
    oof_df = pd.concat(oof, ignore_index=True)
    out.write_csv("oof_predictions", oof_df)
    issues = label_issue_table(oof_df, manifest.target, reviewed_images(pool))
    out.write_csv("label_issues", issues)
    result = {"protocol": f"{folds}-fold cross-validation, stratified and grouped by patient", "folds": rows,
              "summary": _summary(rows), "pooled": pooled_auc(oof_df, manifest), "folder": str(out.path),
              "class_names": list(manifest.class_names), "label_issues": label_issue_summary(issues, len(oof_df))}
    out.write_json("result", result)
    out.write_csv("table", pd.DataFrame(rows))
    return result


def pooled_auc(pred: pd.DataFrame, manifest: Manifest, level: float = 0.95) -> dict:
    """AUC of all out-of-fold predictions together (DeLong CI for binary, macro OvR for multiclass)."""
    task = manifest.target
    if task.is_binary:
        auc, lo, hi = delong_auc_ci(pred[task.label].to_numpy(), pred["prob"].to_numpy(), level)
        return {"n": int(len(pred)), "auc": auc, "auc_ci": [lo, hi], "ci": "DeLong"}
    if task.is_multiclass:
        return {"n": int(len(pred)), "auc": ovr_auc(pred[task.label].to_numpy(), task.probability_matrix(pred))}
    return {"n": int(len(pred))}


def external_validation(cfg: ExperimentConfig, train_sites: list[str], data_dir: str | None, fit: FitFn,
                        pseudo_sites: int = 0, name_suffix: str = "-sites") -> dict:
    """Train on ``train_sites`` (their test rows are the internal test); every other site becomes ``external``.

    ``pseudo_sites > 0`` first splits patients into that many patient-id-range pseudo-sites (no site column).
    Writes the site table into the run folder: one row per held-out site, beside the internal rows.
    """
    grouper = split_grouper(cfg)
    manifest = build_manifest(cfg, data_dir, grouper)
    if pseudo_sites:
        manifest = assign_pseudo_sites(manifest, pseudo_sites)
    df = manifest.df.copy()
    sites = sorted(df["site"].astype(str).unique(), key=_natural_key)
    unknown = sorted(set(train_sites) - set(sites))
    if unknown:
        raise DataError(f"train sites {unknown} not in the data; sites are {sites}")
    held_out = [s for s in sites if s not in train_sites]
    if not held_out:
        raise DataError(f"every site ({sites}) is a training site; leave at least one out for external validation")
    external = ~df["site"].astype(str).isin(train_sites)
    df.loc[external, "split"] = "external"
    dev = df[~external & df["split"].isin(["train", "val"])]
    if not (dev["split"] == "val").any() or not (df.loc[~external, "split"] == "test").any():
        inner = manifest.with_df(df[~external].assign(split=lambda x: np.where(x["split"] == "test", "test", "train")))
        inner = assign_validation_split(inner, cfg.data.val_fraction or 0.1, cfg.data.split_seed,
                                        grouper(inner.df) if grouper is not None else None)
        df = pd.concat([inner.df, df[external]], ignore_index=True)
    fixed = manifest.with_df(df)
    run = fit(fixed_manifest_config(cfg, fixed, f"{cfg.name}{name_suffix}", Path(cfg.output_dir)))
    metrics = run.read_metrics()
    pred = run.read_predictions()
    table = site_table(pred, manifest.target.label, float(metrics["threshold"]["value"]), list(train_sites),
                       min(cfg.evaluate.bootstrap, 500), cfg.evaluate.ci_level, cfg.seed)
    result = {"protocol": "external validation by site" + (" (pseudo-sites: patient-id ranges of one hospital)"
                                                            if pseudo_sites else ""),
              "train_sites": list(train_sites), "external_sites": held_out, "threshold": metrics["threshold"],
              "rows": table, "run": str(run.path)}
    run.write_json("sites", result)
    return result
