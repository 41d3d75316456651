"""The stages composed into runs: prepare (manifest, audit, study rows) -> fit -> predict -> evaluate -> report.

This is the only place that chains stages; verbs, protocols (k-fold, external sites) and tuning trials use it.
"""
from __future__ import annotations

from medfit.audit import run_audit
from medfit.config import ExperimentConfig, updated
from medfit.commands.preflight import preflight
from medfit.data.manifest import Manifest
from medfit.errors import DataError
from medfit.evaluate.whole_run import evaluate_whole_run
from medfit.preprocess.readable import skip_unreadable
from medfit.preprocess.study import study_rows
from medfit.report import write_report
from medfit.run_folder import RunFolder
from medfit.train.ensemble import fit_members
from medfit.train.fit import is_main_process, predict_run
from medfit.train.ood import fit_ood_gate


def prepare_run(cfg: ExperimentConfig, data_dir: str | None = None, resume: bool = False,
                needs: tuple[str, ...] = ("train", "val")) -> tuple[RunFolder, Manifest, ExperimentConfig]:
    """Pre-flight (config, run folder, labels, model: every problem at once), then audit the manifest, expand study
    rows, write the resolved config and the manifest (rank 0 only); returns the run folder, the manifest to use and
    the resolved config."""
    manifest = preflight(cfg, data_dir, resume, needs)
    run = RunFolder.of(cfg.output_dir, cfg.name)
    first = is_main_process()  # DDP children rebuild the same (deterministic) manifest but leave the files to rank 0
    if cfg.preprocess.on_bad_file == "skip":
        manifest = skip_unreadable(cfg, manifest, run if first else None)
    manifest = run_audit(cfg, manifest, run if first else None, log_findings=first).manifest
    manifest = study_rows(manifest, cfg)
    for split in needs:
        if not (manifest.df["split"] == split).any():
            raise DataError(f"{cfg.data.root}: no {split!r} rows in the manifest; this run needs {' and '.join(needs)} "
                            "images")
    if not cfg.data.class_names:
        cfg = updated(cfg, {"data.class_names": list(manifest.class_names)})
    if first:
        run.write_config(cfg)
        run.write_csv("manifest", manifest.df)
    return run, manifest, cfg


def train_run(cfg: ExperimentConfig, data_dir: str | None = None, resume: bool = False,
              callbacks: list | None = None) -> RunFolder | None:
    """Prepare, fit and predict; None in the non-zero ranks of a multi-process run."""
    run, manifest, cfg = prepare_run(cfg, data_dir, resume)
    result = fit_members(cfg, run, manifest, resume, callbacks)
    if result is None:
        return None
    predict_run(result, cfg, manifest, run)
    fit_ood_gate(result.model, result.datasets, cfg, manifest, run, result.covariates)  # audit.ood: which inputs lie outside training
    return run


def evaluate_all(run: RunFolder, cfg: ExperimentConfig | None = None) -> dict:
    """Metrics of the run, plus study-level (augmented prediction) and multilabel 'any' results where they apply;
    ``cfg``: evaluation settings other than the run's saved config."""
    return evaluate_whole_run(run, cfg)


def finish_run(run: RunFolder) -> RunFolder:
    """Evaluate the run and write its report."""
    evaluate_all(run)
    write_report(run)
    return run


def train_and_evaluate(cfg: ExperimentConfig, data_dir: str | None = None) -> RunFolder:
    """One experiment trained and evaluated (no report): what k-fold and site protocols run per fold."""
    run = train_run(cfg, data_dir)
    evaluate_all(run)
    return run
