"""Validation protocols: patient-grouped stratified k-fold cross-validation and external validation by site."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from medfit.config import ExperimentConfig, save_config
from medfit.data.manifest import Manifest, build_manifest
from medfit.errors import DataError

FOLD_METRICS = ["auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"]


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
    return Manifest(df, manifest.label_columns, manifest.class_names, manifest.task)


def _run_on_manifest(cfg: ExperimentConfig, manifest: Manifest, name: str, out_dir: Path,
                     data_dir: str | None) -> Path:
    """Train ``cfg`` on a fixed manifest (written as the run's input CSV), evaluate it, return the run folder."""
    from medfit.evaluate.run import evaluate_run
    from medfit.train.fit import train

    run_cfg = copy.deepcopy(cfg)
    run_cfg.name, run_cfg.output_dir = name, str(out_dir)
    csv = out_dir / f"{name}.input.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(csv)
    d = run_cfg.data
    d.source, d.root, d.image_column, d.patient_column, d.site_column = "csv", str(csv.resolve()), "image", "patient_id", "site"
    d.label_columns, d.class_names, d.val_fraction, d.limit_per_split = list(manifest.label_columns), list(manifest.class_names), 0.0, 0
    run_dir = train(run_cfg, data_dir, evaluate=False)
    evaluate_run(run_dir)
    return run_dir


def _summary(rows: list[dict]) -> dict:
    table = pd.DataFrame(rows)
    out = {}
    for key in FOLD_METRICS:
        if key in table and table[key].notna().any():
            out[key] = {"mean": float(table[key].mean()), "sd": float(table[key].std(ddof=1)) if len(table) > 1 else 0.0}
    return out


def cross_validate(cfg: ExperimentConfig, folds: int = 5, data_dir: str | None = None, seed: int | None = None) -> dict:
    """Patient-grouped stratified k-fold CV on the development pool (train + val); every fold draws its own val.

    Writes ``<output_dir>/<name>-cv/cv.json`` and ``cv.csv``: per-fold test metrics (threshold chosen on the fold's
    val), mean +- sd, and the pooled out-of-fold AUC with its DeLong CI.
    """
    from medfit.data.splits import assign_validation_split, patient_kfold

    seed = cfg.data.split_seed if seed is None else seed
    manifest = build_manifest(cfg, data_dir)
    pool = manifest.df[manifest.df["split"].isin(["train", "val"])].reset_index(drop=True)
    pool_m = Manifest(pool.assign(split="train"), manifest.label_columns, manifest.class_names, manifest.task)
    if pool_m.df["patient_id"].nunique() < folds:
        raise DataError(f"{pool_m.df['patient_id'].nunique()} patients cannot fill {folds} folds")
    out_dir = Path(cfg.output_dir) / f"{cfg.name}-cv"
    rows, oof = [], []
    val_fraction = cfg.data.val_fraction or 0.1
    for k, (_, test_idx) in enumerate(patient_kfold(pool_m, folds, seed)):
        df = pool_m.df.copy()
        df.loc[test_idx, "split"] = "test"
        fold = assign_validation_split(Manifest(df, manifest.label_columns, manifest.class_names, manifest.task),
                                       val_fraction, seed + k)
        run_dir = _run_on_manifest(cfg, fold, f"fold{k + 1}", out_dir, data_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        test = metrics["splits"]["test"]
        rows.append({"fold": k + 1, "n": test["n"], "patients": int(df.loc[test_idx, "patient_id"].nunique()),
                     "threshold": (metrics.get("threshold") or {}).get("value"),
                     **{m: test.get(m) for m in FOLD_METRICS if m in test}})
        pred = pd.read_csv(run_dir / "predictions.csv")
        oof.append(pred[pred["split"] == "test"].assign(fold=k + 1))
    oof_df = pd.concat(oof, ignore_index=True)
    oof_df.to_csv(out_dir / "oof_predictions.csv", index=False)
    result = {"protocol": f"{folds}-fold cross-validation, stratified and grouped by patient", "folds": rows,
              "summary": _summary(rows), "pooled": pooled_auc(oof_df, manifest)}
    (out_dir / "cv.json").write_text(json.dumps(result, indent=2, default=float))
    pd.DataFrame(rows).to_csv(out_dir / "cv.csv", index=False)
    return result


def pooled_auc(pred: pd.DataFrame, manifest: Manifest, level: float = 0.95) -> dict:
    """AUC of all out-of-fold predictions together (DeLong CI for binary, macro OvR for multiclass)."""
    label = manifest.label_columns[0]
    if manifest.task == "binary":
        from medfit.evaluate.stats import delong_auc_ci

        auc, lo, hi = delong_auc_ci(pred[label].to_numpy(), pred["prob"].to_numpy(), level)
        return {"n": int(len(pred)), "auc": auc, "auc_ci": [lo, hi], "ci": "DeLong"}
    if manifest.task == "multiclass":
        from medfit.evaluate.multiclass import ovr_auc

        cols = [f"prob_{c}" for c in manifest.class_names]
        return {"n": int(len(pred)), "auc": ovr_auc(pred[label].to_numpy(), pred[cols].to_numpy())}
    return {"n": int(len(pred))}


def site_table(pred: pd.DataFrame, label: str, threshold: float, internal_sites: list[str] | None = None,
               bootstrap: int = 200, level: float = 0.95, seed: int = 0) -> list[dict]:
    """One row per (split, site) of a binary run at the carried threshold: n, AUC and threshold metrics with CIs."""
    from medfit.evaluate.metrics import bootstrap_ci, fast_binary_metrics

    metric = fast_binary_metrics(threshold)
    rows = []
    for (split, site), part in pred.groupby(["split", "site"], sort=True):
        y, p = part[label].to_numpy().astype(int), part["prob"].to_numpy()
        row = {"split": split, "site": str(site), "n": int(len(y)), "positives": int(y.sum())}
        if internal_sites is not None:
            row["role"] = "internal" if str(site) in internal_sites else "external"
        point = metric(y, p)
        ci = bootstrap_ci(metric, y, p, bootstrap, level, seed) if bootstrap and 0 < y.sum() < len(y) else {}
        for key in FOLD_METRICS:
            row[key] = point.get(key)
            if key in ci:
                row[f"{key}_ci"] = list(ci[key])
        rows.append(row)
    order = {"val": 0, "test": 1, "external": 2}
    return sorted(rows, key=lambda r: (order.get(r["split"], 3), r.get("role", ""), r["site"]))


def external_validation(cfg: ExperimentConfig, train_sites: list[str], data_dir: str | None = None,
                        pseudo_sites: int = 0, name_suffix: str = "-sites", report: bool = True) -> dict:
    """Train on ``train_sites`` (their test rows are the internal test); every other site becomes ``external``.

    ``pseudo_sites > 0`` first splits patients into that many patient-id-range pseudo-sites (no site column).
    Writes ``sites.json`` into the run folder: one row per held-out site, beside the internal rows.
    """
    manifest = build_manifest(cfg, data_dir)
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
        from medfit.data.splits import assign_validation_split

        inner = Manifest(df[~external].assign(split=lambda x: np.where(x["split"] == "test", "test", "train")),
                         manifest.label_columns, manifest.class_names, manifest.task)
        inner = assign_validation_split(inner, cfg.data.val_fraction or 0.1, cfg.data.split_seed)
        df = pd.concat([inner.df, df[external]], ignore_index=True)
    fixed = Manifest(df.reset_index(drop=True), manifest.label_columns, manifest.class_names, manifest.task)
    run_dir = _run_on_manifest(cfg, fixed, f"{cfg.name}{name_suffix}", Path(cfg.output_dir), data_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    pred = pd.read_csv(run_dir / "predictions.csv")
    label = manifest.label_columns[0]
    table = site_table(pred, label, float(metrics["threshold"]["value"]), list(train_sites),
                       min(cfg.evaluate.bootstrap, 500), cfg.evaluate.ci_level, cfg.seed)
    result = {"protocol": "external validation by site" + (" (pseudo-sites: patient-id ranges of one hospital)"
                                                            if pseudo_sites else ""),
              "train_sites": list(train_sites), "external_sites": held_out, "threshold": metrics["threshold"],
              "rows": table, "run": str(run_dir)}
    (run_dir / "sites.json").write_text(json.dumps(result, indent=2, default=float))
    if report:
        from medfit.report import write_report

        write_report(run_dir)
    return result
