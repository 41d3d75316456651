"""Model card and TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378) as Markdown text, from plain dicts.

Every number in the text is formatted from the dicts passed in: ``config`` (the resolved config as a dict),
``metrics`` (the run's metrics), ``counts`` (inclusion_counts of the manifest), ``audit`` (the audit record),
``train_info`` (the training record) and ``about`` (what only the authors know: intended_use, intended_users, target_population,
data_sources, data_dates, setting, eligibility, outcome_definition, ethics, funding, conflicts, protocol,
registration, data_sharing, code_sharing, patient_public_involvement, limitations: list of lines).
Optional metrics sections it reads when present: splits.<split>.calibration.{slope, slope_ci, intercept,
intercept_ci}, recalibration, sites, subgroups ({attribute: subgroup_table}), decision_curve, conformal, referral,
sample_size, learning_curve, temperature, seeds, tta; splits.<split>.decision_curve (the headline split's: test,
else external).
"""
from __future__ import annotations

import pandas as pd

from medfit.evaluate.utility import net_benefit_at
from medfit.report.markdown import ci_percent, fmt, fmt_ci, headline_split, md_table, ordered_splits

TBC = "*To be completed by the authors.*"
SHOWN = [("auc", "AUC"), ("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"),
         ("npv", "NPV"), ("accuracy", "accuracy")]
GAP_NAMES = {"auc": "AUC"}


def inclusion_counts(manifest: pd.DataFrame, label_column: str = "label", patient_column: str = "patient_id",
                     site_column: str = "site", class_names: list[str] | None = None) -> dict:
    """Images, patients, images per class and per site, for every split of a manifest (plain ints)."""
    out = {}
    for split, part in manifest.groupby("split", sort=False):
        labels = part[label_column].astype(int)
        classes = {(class_names[k] if class_names and k < len(class_names) else str(k)): int(n)
                   for k, n in labels.value_counts().sort_index().items()}
        entry = {"images": int(len(part)), "classes": classes}
        if patient_column in part:
            entry["patients"] = int(part[patient_column].nunique())
        if site_column in part:
            entry["sites"] = {str(k): int(v) for k, v in part[site_column].value_counts().sort_index().items()}
        out[str(split)] = entry
    return {s: out[s] for s in ordered_splits(out)}


# ---------------------------------------------------------------- model card sections

def _intended_use(config: dict, about: dict) -> list[str]:
    d = config.get("data", {})
    classes = ", ".join(map(str, d.get("class_names") or [])) or "as in the data"
    lines = ["## Intended use", "", f"- Task: {d.get('task', 'not recorded')} classification of "
             f"{', '.join(d.get('label_columns', ['label']))} (classes: {classes})."]
    for key, title in (("intended_use", "Intended use"), ("intended_users", "Intended users"),
                       ("target_population", "Target population")):
        lines.append(f"- {title}: {about.get(key, TBC)}")
    lines.append("- Not for use outside the population, devices and settings described under Data without a new "
                 "validation.")
    return lines + [""]


def _data(config: dict, counts: dict | None, about: dict) -> list[str]:
    d = config.get("data", {})
    lines = ["## Data", "", f"- Source: {d.get('source', 'not recorded')} `{d.get('root', '')}`",
             f"- Data sources: {about.get('data_sources', TBC)}", f"- Dates of the data: {about.get('data_dates', TBC)}",
             f"- Setting: {about.get('setting', TBC)}", f"- Eligibility: {about.get('eligibility', TBC)}",
             f"- Splits: patient-level ({d.get('patient_scope', 'global')} patient ids), validation fraction "
             f"{fmt(d.get('val_fraction'), 2)} of the training pool, split seed {fmt(d.get('split_seed'))}", ""]
    if counts:
        classes = list(dict.fromkeys(c for e in counts.values() for c in e.get("classes", {})))
        rows = [[s, e["images"], e.get("patients", "n/a"), *[e.get("classes", {}).get(c, 0) for c in classes],
                 len(e.get("sites", {})) or "n/a"] for s, e in counts.items()]
        lines += ["### Inclusion counts", ""] + md_table(["split", "images", "patients", *classes, "sites"], rows) + [""]
    return lines


def _preprocessing(config: dict) -> list[str]:
    d, p = config.get("data", {}), config.get("preprocess", {})
    ops = ", ".join(op.get("name", "?") for op in p.get("ops", [])) or "none"
    aug = config.get("train", {}).get("augment", {})
    aug_text = ", ".join(f"{k} {v}" for k, v in aug.items()) or "none"
    return ["## Preprocessing", "", f"- Recipe: {p.get('recipe') or 'resize only'}; explicit ops: {ops}",
            f"- Input: {fmt(d.get('image_size'))} x {fmt(d.get('image_size'))} pixels, "
            f"{fmt(d.get('channels'))} channel(s), resize by {p.get('resize', 'stretch')}",
            f"- Unreadable files: {p.get('on_bad_file', 'error')}",
            f"- Training augmentation: {aug_text}", ""]


def _model(config: dict, train_info: dict) -> list[str]:
    m = config.get("model", {})
    lines = ["## Model and fine-tuning", "", f"- Architecture: {m.get('name', 'not recorded')}",
             f"- Pretrained weights: {m.get('pretrained') or 'none (trained from scratch)'}",
             f"- Fine-tuning: {m.get('finetune', 'not recorded')}"]
    if m.get("finetune") == "lora":
        lines.append(f"- LoRA: rank {fmt(m.get('lora', {}).get('r'))}, alpha {fmt(m.get('lora', {}).get('alpha'))}")
    params = (train_info or {}).get("parameters", {})
    if params:
        lines.append(f"- Parameters: {fmt(params.get('trainable'))} trainable of {fmt(params.get('total'))}")
    return lines + [""]


def _training(config: dict, train_info: dict) -> list[str]:
    t = config.get("train", {})
    o = t.get("optim", {})
    lines = ["## Training", "", f"- Optimiser {o.get('optimizer', 'n/a')}, learning rate {o.get('lr', 'n/a')}, "
             f"weight decay {o.get('weight_decay', 'n/a')}, batch size {fmt(t.get('batch_size'))}, "
             f"scheduler {o.get('scheduler', 'n/a')}", f"- Epochs: {fmt(t.get('epochs'))} (early-stopping patience "
             f"{fmt(t.get('early_stopping_patience'))}, monitor {t.get('monitor', 'n/a')})",
             f"- Class imbalance: {t.get('class_balance', 'not recorded')}", f"- Seed: {fmt(config.get('seed'))}"]
    if len(t.get("seeds") or []) > 1:
        lines.append(f"- Deep ensemble of {len(t['seeds'])} members (seeds {', '.join(map(str, t['seeds']))}); "
                     "the prediction is the mean of their probabilities")
    timing = (train_info or {}).get("timing", {})
    if timing:
        lines.append(f"- Ran {fmt(timing.get('epochs_run'))} epoch(s) in {fmt(timing.get('fit_seconds'), 1)} s "
                     f"on {fmt(timing.get('world_size'))} device(s); checkpoint {timing.get('best_checkpoint', 'n/a')}")
    return lines + [""]


def _performance(metrics: dict) -> list[str]:
    thr = metrics.get("threshold", {})
    lines = ["## Performance", "", f"Values with {ci_percent(metrics)} % CIs ({fmt(metrics.get('bootstrap'))} stratified "
             "bootstrap resamples)."]
    if "value" in thr:
        lines.append(f"Operating threshold {fmt(thr['value'], 4)} ({thr.get('method', 'n/a')}, chosen on "
                     f"{thr.get('chosen_on', 'val')}), carried unchanged to the other splits.")
    splits = [(name, metrics["splits"][name]) for name in ordered_splits(metrics.get("splits", {}))]
    shown = [(k, name) for k, name in SHOWN if any(s.get(k) is not None for _, s in splits)]  # multiclass: AUC, accuracy
    rows = [[split, fmt(s.get("n")), fmt(s.get("positives")), *[fmt_ci(s.get(k), s.get(f"{k}_ci")) for k, _ in shown]]
            for split, s in splits]
    lines += [""] + md_table(["split", "n", "positives", *[name for _, name in shown]], rows) + [""]
    return lines + _sites(metrics) + _subgroups(metrics)


def _sites(metrics: dict) -> list[str]:
    sites = metrics.get("sites") or []
    if not sites:
        return []
    rows = [[r.get("split"), r.get("site"), fmt(r.get("n")), fmt(r.get("positives")),
             *[fmt_ci(r.get(k), r.get(f"{k}_ci")) for k in ("auc", "sensitivity", "specificity")]] for r in sites]
    header = ["split", "site", "n", "positives", "AUC", "sensitivity", "specificity"]
    return ["### Per site", ""] + md_table(header, rows) + [""]


def _subgroups(metrics: dict) -> list[str]:
    lines = []
    for attribute, table in (metrics.get("subgroups") or {}).items():
        rows = [[g["group"], fmt(g["n"]), fmt(g["positives"]), fmt(g["prevalence"]), fmt_ci(g["auc"], g.get("auc_ci")),
                 fmt_ci(g["sensitivity"], g.get("sensitivity_ci")), fmt_ci(g["specificity"], g.get("specificity_ci")),
                 fmt(g.get("slope")), fmt(g.get("intercept"))] for g in table["groups"]]
        lines += [f"### Subgroups by {attribute}", ""]
        lines += md_table(["group", "n", "positives", "prevalence", "AUC", "sensitivity", "specificity",
                         "calibration slope", "calibration intercept"], rows) + [""]
        for name, gap in (table.get("gaps") or {}).items():
            if gap:
                lines.append(f"- Largest {GAP_NAMES.get(name, name)} gap: {gap['highest']} vs {gap['lowest']}, difference "
                             f"{fmt(gap['difference'])}, {gap['test']} p = {fmt(gap['p_value'])} "
                             f"(Bonferroni {fmt(gap['p_value_bonferroni'])})")
        lines += [f"- Warning: {w}" for w in table.get("warnings", [])] + [""]
    return lines


def _calibration(metrics: dict) -> list[str]:
    lines = ["## Calibration", ""]
    rows = []
    for split in ordered_splits(metrics.get("splits", {})):
        c = metrics["splits"][split].get("calibration")
        if c:
            rows.append([split, fmt(c.get("brier")), fmt(c.get("ece")), fmt_ci(c.get("slope"), c.get("slope_ci")),
                         fmt_ci(c.get("intercept"), c.get("intercept_ci"))])
    if not rows:
        return lines + ["Not computed for this run.", ""]
    lines += md_table(["split", "Brier", "ECE", "slope (ideal 1)", "intercept (ideal 0)"], rows) + [""]
    temp, recal = metrics.get("temperature"), metrics.get("recalibration")
    if temp:
        lines.append(f"- Temperature scaling fitted on {temp.get('fitted_on', 'val')}: T = {fmt(temp.get('value'))}")
    if recal:
        b, a = recal["before"], recal["after_temperature"]
        lines.append(f"- Slope {fmt(b['slope'])} -> {fmt(a['slope'])} and intercept {fmt(b['intercept'])} -> "
                     f"{fmt(a['intercept'])} after temperature scaling (T = {fmt(recal['temperature'])})")
    return lines + [""]


def _utility(metrics: dict) -> list[str]:
    split = headline_split(metrics.get("splits", {}))
    curve = metrics["splits"][split].get("decision_curve") if split else None
    if not curve:
        return ["## Clinical utility", "", "Decision curve analysis not computed for this run.", ""]
    rows = [[fmt(r["threshold"], 2), fmt(r["model"]), fmt(r["treat_all"]), fmt(r["treat_none"]),
             fmt(r["interventions_avoided_per_100"], 1)] for r in net_benefit_at(curve)]
    ranges = "; ".join(f"{fmt(a, 2)} to {fmt(b, 2)}" for a, b in curve.get("useful_ranges", [])) or "none"
    header = ["threshold", "net benefit: model", "treat all", "treat none", "interventions avoided per 100"]
    return (["## Clinical utility", "", f"Decision curve on the {split} split's {fmt(curve['n'])} cases (prevalence "
             f"{fmt(curve['prevalence'])}). The model's net benefit exceeds treat-all and treat-none at thresholds "
             f"{ranges}.", ""] + md_table(header, rows) + [""])


def _uncertainty(metrics: dict) -> list[str]:
    lines = []
    conf = metrics.get("conformal")
    if conf and conf.get("coverage") is None:
        lines.append(f"- Conformal prediction sets not computed: {conf.get('skipped', 'no cases')}")
    elif conf:
        lines += [f"- Conformal prediction sets ({conf['method']}, alpha {fmt(conf['alpha'], 2)}, calibrated on "
                  f"{fmt(conf['calibration_n'])} validation cases): coverage {fmt(conf['coverage'])} (target "
                  f"{fmt(conf['target_coverage'])}), mean set size {fmt(conf['mean_set_size'])}, uncertain (more than one "
                  f"label) {fmt(conf['uncertain_share'])}, empty {fmt(conf['empty_share'])}"]
        lines += [f"  - {g}: coverage {fmt(s['coverage'])}, uncertain {fmt(s['uncertain_share'])} (n = {fmt(s['n'])})"
                  for g, s in (conf.get("per_group") or {}).items()]
        lines += [f"  - {conf['note']}"] if conf.get("note") else []
    ref = metrics.get("referral")
    if ref:
        lines.append(f"- Referral by {ref.get('uncertainty', 'uncertainty')}:")
        lines += [f"  - Referring the most uncertain {fmt(100 * r['referral_rate'], 0)} % ({fmt(r['referred'])} cases): "
                  f"accuracy {fmt(r['accuracy'])}, AUC {fmt(r['auc'])} on the {fmt(r['retained'])} retained"
                  for r in ref["at"]]
    lines += _seeds(metrics) + _tta(metrics)
    return (["## Uncertainty and referral", ""] + lines + [""]) if lines else []


def _seeds(metrics: dict) -> list[str]:
    s = metrics.get("seeds")
    if not s:
        return []
    lines = [f"- Ensemble of {fmt(s['members'])} members (seeds {', '.join(map(str, s['seeds']))}): the ensemble's "
             "value [CI] and the members' mean +- sd"]
    for split in ordered_splits(s["splits"]):
        pooled, leaf = metrics["splits"].get(split, {}), s["splits"][split].get("auc")
        if leaf:
            lines.append(f"  - {split} AUC {fmt_ci(pooled.get('auc'), pooled.get('auc_ci'))}; members "
                         f"{fmt(leaf['mean'])} +- {fmt(leaf['sd'])}")
    return lines


def _tta(metrics: dict) -> list[str]:
    t = metrics.get("tta")
    if not t:
        return []
    return [f"- Test-time augmentation ({', '.join(t['views'])}), {split}: AUC {fmt(r.get('auc_no_tta'))} without, "
            f"{fmt(r.get('auc_tta'))} with, difference {fmt_ci(r.get('difference'), r.get('difference_ci'))}, "
            f"{r.get('test', 'paired DeLong')} p = {fmt(r.get('p_value'))}" for split, r in t["splits"].items()]


def _sample_size(metrics: dict) -> list[str]:
    s, lc = metrics.get("sample_size"), metrics.get("learning_curve")
    lines = []
    if s:
        lines.append(f"- A test set of {fmt(s['n'])} cases at prevalence {fmt(s['prevalence'])} gives an AUC of "
                     f"{fmt(s['auc'])} a {fmt(100 * s['level'], 0)} % CI half-width of {fmt(s['halfwidth'])} "
                     f"({s.get('method', 'Hanley & McNeil 1982')})")
        target = s.get("for_target")
        if target:
            lines.append(f"- A half-width of {fmt(target['halfwidth'])} would need {fmt(target['n'])} cases at this "
                         "prevalence and AUC")
    if lc:
        lines.append(f"- Learning curve: {lc.get('message', 'n/a')} (rule: {lc.get('rule', 'n/a')})")
    return (["## Sample size", ""] + lines + [""]) if lines else []


def limitations(metrics: dict, audit: dict | None = None, about: dict | None = None) -> list[str]:
    """Limitations that the run itself shows, then the authors' own lines."""
    out = []
    if "external" not in metrics.get("splits", {}):
        out.append("No external validation: every split comes from the development data source(s).")
    cal = metrics.get("splits", {}).get("test", {}).get("calibration", {})
    if _excludes(cal.get("slope_ci"), 1):
        out.append(f"Test calibration slope {fmt_ci(cal['slope'], cal['slope_ci'])} excludes 1: predicted risks are "
                   f"{'too extreme' if cal['slope'] < 1 else 'too moderate'}.")
    if _excludes(cal.get("intercept_ci"), 0):
        out.append(f"Test calibration intercept {fmt_ci(cal['intercept'], cal['intercept_ci'])} excludes 0: predicted "
                   f"risks are on average too {'high' if cal['intercept'] < 0 else 'low'}.")
    conf = metrics.get("conformal")
    if conf and conf.get("coverage") is not None and conf["coverage"] < conf["target_coverage"] - 0.03:
        out.append(f"Conformal coverage {fmt(conf['coverage'])} falls short of {fmt(conf['target_coverage'])}: "
                   "validation and test cases are not exchangeable (a shift between them).")
    for table in (metrics.get("subgroups") or {}).values():
        out += table.get("warnings", [])
    out += [f"Audit: {w}" for w in (audit or {}).get("warnings", [])]
    return out + list((about or {}).get("limitations", []))


def _excludes(ci, value: float) -> bool:
    return bool(ci) and None not in ci and not ci[0] <= value <= ci[1]


def _audit(audit: dict | None) -> list[str]:
    if not audit:
        return ["## Audit findings", "", "No audit recorded for this run.", ""]
    lines = ["## Audit findings", "", audit.get("summary", ""), ""]
    lines += [f"- Error: {e}" for e in audit.get("errors", [])] + [f"- Warning: {w}" for w in audit.get("warnings", [])]
    return lines + [""]


def model_card(config: dict, metrics: dict, counts: dict | None = None, audit: dict | None = None,
               train_info: dict | None = None, about: dict | None = None) -> str:
    """The run's model card as Markdown (see the module docstring for what each dict holds)."""
    about = about or {}
    lines = [f"# Model card: {config.get('name', 'medfit run')}", ""]
    lines += _intended_use(config, about) + _data(config, counts, about) + _preprocessing(config)
    lines += _model(config, train_info or {}) + _training(config, train_info or {}) + _performance(metrics)
    lines += _calibration(metrics) + _utility(metrics) + _uncertainty(metrics) + _sample_size(metrics)
    found = limitations(metrics, audit, about)
    lines += ["## Limitations", ""] + ([f"- {x}" for x in found] or [TBC]) + [""] + _audit(audit)
    return "\n".join(lines).rstrip() + "\n"
