"""The shift between development and test in words, for the report and the end-of-run summary."""
from __future__ import annotations

import html

NAMES = {"auc": "AUC", "ppv": "PPV", "npv": "NPV", "f1": "F1"}


def _ci(ci: list[float]) -> str:
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def finding_sentence(f: dict, level: int = 95) -> str:
    """One metric whose CI parts between the reference split and another, in words."""
    name = NAMES.get(f["metric"], f["metric"])
    at = "" if f["metric"] == "auc" else " at the validation threshold"
    verb = "falls" if f["difference"] < 0 else "rises"
    side = "lower" if f["difference"] < 0 else "higher"
    return (f"{name[0].upper()}{name[1:]}{at} {verb} from {f['reference_value']:.3f} on {f['reference']} "
            f"({level} % CI {_ci(f['reference_ci'])}) to {f['value']:.3f} on {f['split']} ({_ci(f['ci'])}): "
            f"{abs(f['difference']):.3f} {side}, beyond both confidence intervals.")


def _separable(result: dict) -> bool:
    return result["auc_ci"][0] > 0.5


def domain_sentence(split: str, result: dict, reference: str = "val", level: int = 95) -> str:
    """What the domain classifier says about ``reference`` vs ``split`` inputs, in words."""
    per_class = result.get("per_class", {})
    within = "; ".join(f"within {name} {r['auc']:.2f}" for name, r in per_class.items())
    auc = (f"cross-validated AUC {result['auc']:.2f} ({level} % CI {_ci(result['auc_ci'])}"
           f"{'; ' + within if within else ''}; 0.5 = indistinguishable)")
    tool = f"A {result['model'].split(',')[0]} on {result['features']}"
    if _separable(result) and (not per_class or any(map(_separable, per_class.values()))):
        return (f"{tool} tells {reference} images from {split} images apart with {auc}: the {split} data come from "
                f"a different distribution than the development ({reference}) data.")
    if _separable(result):
        return (f"{tool} tells {reference} from {split} images apart with {auc}, but not within a class: the "
                f"difference is the class mix, not the images.")
    return (f"{tool} cannot tell {reference} images from {split} images ({auc}): no sign that the images "
            f"themselves changed.")


def shift_sentences(metrics: dict) -> list[str]:
    """Every finding and domain-classifier result of the run's shift record, one sentence each."""
    shift = metrics.get("shift") or {}
    level = round(metrics.get("ci_level", 0.95) * 100)
    out = [finding_sentence(f, level) for f in shift.get("findings", [])]
    for split, result in shift.get("domain", {}).items():
        out.append(domain_sentence(split, result, shift.get("reference", "val"), level))
    if shift.get("domain_unavailable"):
        out.append(f"Domain classifier not run: {shift['domain_unavailable']}.")
    return out


def shift_section(metrics: dict) -> str:
    """The report's shift paragraph (empty when the run has no later split to compare)."""
    sentences = shift_sentences(metrics)
    if not sentences:
        return ""
    found = bool((metrics.get("shift") or {}).get("findings"))
    title = "Shift between development and test" + ("" if found else ": none beyond the CIs")
    body = "".join(f"<p>{html.escape(s)}</p>" for s in sentences)
    return f'<h2>{title}</h2><div class="shift">{body}</div>'
