"""Study-level metrics of augmented prediction: each study's combined probability (key slice +- k) scored at a
threshold chosen on the validation studies, per split and per (split, site) with internal / external roles."""
from __future__ import annotations

import pandas as pd

from medfit.config import EvaluateConfig
from medfit.evaluate.run import evaluate_binary
from medfit.evaluate.sites import site_table


def internal_sites(manifest: pd.DataFrame) -> list[str]:
    """The sites a model was developed on: those with training rows."""
    return sorted(manifest.loc[manifest["split"] == "train", "site"].astype(str).unique()) if "site" in manifest else []


def study_level_metrics(studies: pd.DataFrame, label: str, cfg: EvaluateConfig, internal: list[str] | None = None,
                        rule: str = "mean_prob", seed: int = 0) -> dict:
    """Threshold on the val studies' combined probabilities (``cfg.threshold``), then per split n, AUC, accuracy,
    sensitivity, specificity, PPV, NPV and F1 with bootstrap CIs; per-site rows when the studies carry sites."""
    table = studies.rename(columns={"combined": "prob"})
    val = table[table["split"] == "val"]
    if val.empty or (val[label].nunique() < 2 and cfg.threshold != "fixed"):
        return {"unit": "study", "note": "no validation studies of both classes: no study-level threshold"}
    result = evaluate_binary(table[["split", label, "prob"]], label, cfg, seed)
    result["unit"] = f"study: key slice and neighbours, probabilities combined by {rule}"
    result["threshold"]["chosen_on"] = "val studies"
    if "site" in table:
        result["sites"] = site_table(table[table["split"] != "train"], label, float(result["threshold"]["value"]),
                                     internal, min(cfg.bootstrap, 200), cfg.ci_level, seed)
    return result
