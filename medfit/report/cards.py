"""Write a run's model card and TRIPOD+AI checklist from its folder (config, metrics, manifest, audit, training
record, and the authors' notes in the run's "about" file when present)."""
from __future__ import annotations

import yaml

from medfit.config import config_to_dict
from medfit.errors import DataError
from medfit.report.model_card import inclusion_counts, model_card
from medfit.report.tripod_ai import tripod_ai_checklist
from medfit.run_folder import RunFolder


def read_about(run: RunFolder) -> dict:
    """The authors' notes (intended use, data dates, ethics, ...; keys in medfit.report.model_card), or {}."""
    if not run.has("about"):
        return {}
    try:
        about = yaml.safe_load(run.file("about").read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{run.file('about')}: not valid YAML ({str(exc).splitlines()[0]}); fix it or remove it") from None
    if not isinstance(about, dict):
        raise DataError(f"{run.file('about')}: expected a mapping of item -> text (e.g. intended_use: ...)")
    return {str(k): v for k, v in about.items()}


def card_inputs(run: RunFolder) -> tuple:
    """(config, metrics, counts, audit, train_info, about) of a run, as the card functions take them."""
    cfg = run.read_config()
    counts = None
    if run.has("manifest"):
        names = None if cfg.data.task == "multilabel" else list(cfg.data.class_names)
        counts = inclusion_counts(run.read_manifest(), cfg.data.label_columns[0], class_names=names)
    return (config_to_dict(cfg), run.read_metrics(), counts, run.read_json_or("audit"), run.read_json_or("train_info"),
            read_about(run))


def write_cards(run: RunFolder) -> tuple:
    """Write the model card and the TRIPOD+AI checklist into the run; returns their paths."""
    inputs = card_inputs(run)
    return run.write_text("model_card", model_card(*inputs)), run.write_text("tripod", tripod_ai_checklist(*inputs))
