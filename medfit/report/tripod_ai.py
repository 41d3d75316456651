"""The TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378; 27 items) filled from a run where the run knows.

Each item's requirement is paraphrased (see the BMJ article for the full wording). An item gets text from the run's
dicts (same dicts as model_card) or from ``about``, and is otherwise marked to be completed by the authors.
"""
from __future__ import annotations

from medfit.report.markdown import ci_percent, fmt, fmt_ci, md_table, ordered_splits
from medfit.report.model_card import TBC, limitations
from medfit.run_folder import FILES

# (item, topic, development/evaluation, paraphrased requirement, key in ``about`` that answers it, or None)
ITEMS = [
    ("1", "Title", "D;E", "Study as development/evaluation of a prediction model; population; outcome", "title"),
    ("2", "Abstract", "D;E", "Structured abstract per TRIPOD+AI for Abstracts", "abstract"),
    ("3a", "Background", "D;E", "Healthcare context, diagnostic or prognostic, rationale, existing models", "context"),
    ("3b", "Background", "D;E", "Target population, intended purpose in the care pathway, intended users", "intended_use"),
    ("3c", "Background", "D;E", "Known health inequalities between sociodemographic groups", "inequalities"),
    ("4", "Objectives", "D;E", "Objectives; development, validation or both", None),
    ("5a", "Data", "D;E", "Data sources for development and evaluation, rationale, representativeness", "data_sources"),
    ("5b", "Data", "D;E", "Dates of the participant data (accrual start/end, follow-up)", "data_dates"),
    ("6a", "Participants", "D;E", "Study setting, number and location of centres", "setting"),
    ("6b", "Participants", "D;E", "Eligibility criteria", "eligibility"),
    ("6c", "Participants", "D;E", "Treatments received and how they were handled", "treatments"),
    ("7", "Data preparation", "D;E", "Pre-processing and quality checking, and whether similar across groups", None),
    ("8a", "Outcome", "D;E", "Outcome, time horizon, how and when assessed, rationale, consistency across groups",
     "outcome_definition"),
    ("8b", "Outcome", "D;E", "Qualifications and demographics of assessors of a subjective outcome", "outcome_assessors"),
    ("8c", "Outcome", "D;E", "Blinding of outcome assessment", "outcome_blinding"),
    ("9a", "Predictors", "D", "Choice of initial predictors and any pre-selection", None),
    ("9b", "Predictors", "D;E", "Definition of all predictors, how and when measured, blinding", None),
    ("9c", "Predictors", "D;E", "Qualifications and demographics of assessors of subjective predictors",
     "predictor_assessors"),
    ("10", "Sample size", "D;E", "How the study size was arrived at and why it suffices; any calculation", None),
    ("11", "Missing data", "D;E", "How missing data were handled; reasons for omitting data", None),
    ("12a", "Analytical methods", "D", "How the data were used and partitioned", None),
    ("12b", "Analytical methods", "D", "How predictors were handled (form, rescaling, standardisation)", None),
    ("12c", "Analytical methods", "D", "Model type, rationale, model-building steps, tuning, internal validation", None),
    ("12d", "Analytical methods", "D;E", "Heterogeneity of performance across clusters (e.g. hospitals)", None),
    ("12e", "Analytical methods", "D;E", "All performance measures and plots and their rationale", None),
    ("12f", "Analytical methods", "E", "Any model updating (e.g. recalibration) from the evaluation", None),
    ("12g", "Analytical methods", "E", "How the predictions were calculated for the evaluation", None),
    ("13", "Class imbalance", "D;E", "Class imbalance methods, why, and any recalibration after them", None),
    ("14", "Fairness", "D;E", "Approaches used to address model fairness and their rationale", None),
    ("15", "Model output", "D", "Output (probabilities, classes); how any classification threshold was chosen", None),
    ("16", "Training versus evaluation", "D;E", "Differences between development and evaluation data", None),
    ("17", "Ethical approval", "D;E", "Ethics committee and consent or waiver", "ethics"),
    ("18a", "Funding", "D;E", "Funding sources and the funders' role", "funding"),
    ("18b", "Conflicts of interest", "D;E", "Conflicts of interest and financial disclosures", "conflicts"),
    ("18c", "Protocol", "D;E", "Where the protocol is, or that none was prepared", "protocol"),
    ("18d", "Registration", "D;E", "Registration (register, number) or that none was made", "registration"),
    ("18e", "Data sharing", "D;E", "Availability of the study data", "data_sharing"),
    ("18f", "Code sharing", "D;E", "Availability of the analytical code", "code_sharing"),
    ("19", "Patient and public involvement", "D;E", "Any patient and public involvement, or none",
     "patient_public_involvement"),
    ("20a", "Participants", "D;E", "Flow of participants, with and without the outcome", None),
    ("20b", "Participants", "D;E", "Characteristics overall and per data source or setting", None),
    ("20c", "Participants", "E", "Evaluation data compared with development data", None),
    ("21", "Model development", "D;E", "Participants and outcome events in each analysis", None),
    ("22", "Model specification", "D", "Details of the full model for new predictions and third-party evaluation", None),
    ("23a", "Model performance", "D;E", "Performance with CIs, including key subgroups", None),
    ("23b", "Model performance", "D;E", "Heterogeneity of performance across clusters", None),
    ("24", "Model updating", "E", "Results of any model updating", None),
    ("25", "Interpretation", "D;E", "Overall interpretation, including fairness", "interpretation"),
    ("26", "Limitations", "D;E", "Limitations and their effect on bias, uncertainty, generalisability", None),
    ("27a", "Usability", "D", "How poor-quality or unavailable input data should be handled in use", "input_quality"),
    ("27b", "Usability", "D", "User interaction with inputs or the model; expertise required", "user_expertise"),
    ("27c", "Usability", "D;E", "Next steps for research on applicability and generalisability", "next_steps"),
]


def _counts_line(counts: dict | None) -> str | None:
    if not counts:
        return None
    parts = []
    for split, e in counts.items():
        classes = ", ".join(f"{k}: {v}" for k, v in e.get("classes", {}).items())
        patients = f", {e['patients']} patients" if "patients" in e else ""
        parts.append(f"{split} {e['images']} images{patients} ({classes})")
    return "; ".join(parts)


def _performance_line(metrics: dict) -> str | None:
    parts = [f"{s}: AUC {fmt_ci(metrics['splits'][s].get('auc'), metrics['splits'][s].get('auc_ci'))}"
             for s in ordered_splits(metrics.get("splits", {})) if metrics["splits"][s].get("auc") is not None]
    if not parts:
        return None
    line = f"{ci_percent(metrics)} % bootstrap CIs; " + "; ".join(parts)
    tables = metrics.get("subgroups") or {}
    if tables:
        line += f". Subgroup tables by {', '.join(tables)} in the model card"
    return line


def _measures(metrics: dict) -> str:
    found = ["AUC, sensitivity, specificity, PPV, NPV, accuracy with stratified-bootstrap CIs"]
    test = metrics.get("splits", {}).get("test", {})
    if "auc_delong_ci" in test:
        found.append("DeLong AUC CI")
    if "wilson_ci" in test:
        found.append("Wilson CIs of proportions")
    if "calibration" in test:
        slope = ", calibration slope/intercept" if "slope" in test["calibration"] else ""
        found.append("Brier score, ECE, reliability diagram" + slope)
    if any(s.get("decision_curve") for s in metrics.get("splits", {}).values()):
        found.append("decision curve (net benefit) per split")
    names = {"conformal": "conformal prediction sets", "referral": "risk-coverage (referral) curve",
             "subgroups": "subgroup performance with gap tests", "sample_size": "Hanley-McNeil AUC CI half-width",
             "seeds": "ensemble members' mean +- sd over seeds", "tta": "test-time augmentation with paired DeLong"}
    return "; ".join(found + [v for k, v in names.items() if metrics.get(k)])


def _run_answers(config: dict, metrics: dict, counts: dict | None, audit: dict | None, train_info: dict | None) -> dict:
    """Answers the run itself gives, keyed by item."""
    d, p, m, t = (config.get(k, {}) for k in ("data", "preprocess", "model", "train"))
    splits = ordered_splits(metrics.get("splits", {}))
    thr = metrics.get("threshold", {})
    params = (train_info or {}).get("parameters", {})
    sample = metrics.get("sample_size")
    answers = {
        "4": "Development with internal validation on a held-out test split" +
             (" and external validation" if "external" in splits else "") + f" (splits: {', '.join(splits)})",
        "7": f"Preprocessing recipe {p.get('recipe') or 'resize only'} to {fmt(d.get('image_size'))} px; "
             f"automated audit: {(audit or {}).get('summary', 'not run')}",
        "9a": f"All pixels of each image ({fmt(d.get('image_size'))} x {fmt(d.get('image_size'))}, "
              f"{fmt(d.get('channels'))} channel(s)); no predictor pre-selection",
        "9b": f"Image input from {d.get('source', 'n/a')} `{d.get('root', '')}`, preprocessed as in item 7",
        "10": _sample_line(sample),
        "11": f"Unreadable images: on_bad_file = {p.get('on_bad_file', 'error')}; no imputation (image inputs)",
        "12a": f"Patient-level split (patient ids {d.get('patient_scope', 'global')}); validation fraction "
               f"{fmt(d.get('val_fraction'), 2)} of the training pool (split seed {fmt(d.get('split_seed'))}); "
               "threshold and calibration chosen on validation only",
        "12b": f"Pixel intensities rescaled; resize by {p.get('resize', 'stretch')}; augmentation in training only",
        "12c": f"{m.get('name', 'n/a')} network, fine-tuning {m.get('finetune', 'n/a')}, pretrained "
               f"{m.get('pretrained') or 'none'}; optimiser {t.get('optim', {}).get('optimizer', 'n/a')}, lr "
               f"{t.get('optim', {}).get('lr', 'n/a')}, "
               f"{fmt(t.get('epochs'))} epochs" + (f"; deep ensemble of {len(t['seeds'])} seeds" if len(t.get("seeds") or [])
                                                  > 1 else "") + "; internal validation on a held-out split",
        "12d": "Performance per site reported (see model card)" if metrics.get("sites") else None,
        "12e": _measures(metrics),
        "12f": _updating_method(metrics),
        "12g": f"Predictions from the trained checkpoint by medfit ({FILES['predictions']} in the run folder)",
        "13": f"class_balance = {t.get('class_balance', 'n/a')}",
        "14": (f"Performance compared across {', '.join(metrics['subgroups'])} with gap tests"
               if metrics.get("subgroups") else None),
        "15": (f"Probability per class; threshold {fmt(thr['value'], 4)} by {thr.get('method', 'n/a')} on "
               f"{thr.get('chosen_on', 'val')}" if "value" in thr
               else f"Probability per class; {thr.get('method', 'argmax')}"),
        "16": None if "external" in splits else "Evaluation data come from the same source(s) as the development data",
        "20a": _counts_line(counts),
        "20b": _counts_line(counts),
        "21": _counts_line(counts),
        "22": (f"{m.get('name', 'n/a')} with {fmt(params.get('total'))} parameters; weights in the run folder"
               if params else None),
        "23a": _performance_line(metrics),
        "23b": "Per-site table in the model card" if metrics.get("sites") else None,
        "24": _updating_line(metrics),
    }
    found = limitations(metrics, audit)
    answers["26"] = "; ".join(x.rstrip(".") for x in found) if found else None
    return {k: v for k, v in answers.items() if v}


def _sample_line(sample: dict | None) -> str | None:
    if not sample:
        return None
    line = (f"Sample size not calculated in advance; test set of {fmt(sample['n'])} cases gives an AUC CI half-width "
            f"of {fmt(sample['halfwidth'])} at AUC {fmt(sample['auc'])}")
    target = sample.get("for_target")
    return line + (f"; a half-width of {fmt(target['halfwidth'])} would need {fmt(target['n'])} cases" if target else "")


def _updating_method(metrics: dict) -> str:
    temp, recal = metrics.get("temperature") or {}, metrics.get("recalibration") or {}
    if temp.get("value") is not None:
        return f"Temperature scaling fitted on validation (T = {fmt(temp['value'])})"
    if recal.get("temperature") is not None:
        return (f"No model updating; temperature scaling fitted on validation (T = {fmt(recal['temperature'])}) is "
                "reported as a sensitivity analysis of calibration")
    return "No model updating"


def _updating_line(metrics: dict) -> str | None:
    recal = metrics.get("recalibration")
    if not recal:
        return None
    b, a = recal["before"], recal["after_temperature"]
    return (f"Calibration slope {fmt(b['slope'])} -> {fmt(a['slope'])}, intercept {fmt(b['intercept'])} -> "
            f"{fmt(a['intercept'])} after temperature scaling")


def tripod_ai_checklist(config: dict, metrics: dict, counts: dict | None = None, audit: dict | None = None,
                        train_info: dict | None = None, about: dict | None = None) -> str:
    """The TRIPOD+AI checklist: one row per item with the run's answer, the authors' (``about``), or a to-do mark."""
    about = about or {}
    run = _run_answers(config, metrics, counts, audit, train_info)
    rows = []
    for item, topic, de, requirement, key in ITEMS:
        answer = about.get(key) if key else None
        answer = answer or run.get(item) or TBC
        rows.append([item, topic, de, requirement, answer])
    done = sum(1 for r in rows if r[4] != TBC)
    head = [f"# TRIPOD+AI checklist: {config.get('name', 'medfit run')}", "",
            "Collins GS et al. TRIPOD+AI statement. BMJ 2024;385:e078378. Requirements paraphrased; D = development, "
            "E = evaluation.",
            f"Filled from the run or the authors' notes: {done} of {len(rows)} rows (27 items, some with sub-items).", ""]
    return "\n".join(head + md_table(["item", "topic", "D/E", "requirement", "reported"], rows)) + "\n"
