"""The evidence lines of the end-of-run summary: short, one per section that the run has."""
from __future__ import annotations

from medfit.report.sample_size import sample_size_lines


def _conformal(c: dict) -> str:
    return (f"conformal sets ({c['method']}, alpha {c['alpha']}) on {c['split']}: coverage {c['coverage']:.3f} "
            f"(requested {c['target_coverage']:.2f}), mean set size {c['mean_set_size']:.2f}, uncertain "
            f"{100 * c['uncertain_share']:.1f} %")


def _referral(r: dict) -> str:
    at = ", ".join(f"{100 * a['referral_rate']:.0f} % -> accuracy {a['accuracy']:.3f}" for a in r["at"])
    return f"referral by {r['uncertainty']} on {r['split']}: {at}"


def _seeds(s: dict) -> str:
    auc = (s["splits"].get("test") or {}).get("auc")
    return (f"ensemble of {s['members']} seeds" + (f": members' test AUC {auc['mean']:.3f} ± {auc['sd']:.3f}" if auc
                                                      else ""))


def _tta(t: dict) -> str:
    r = t["splits"].get("test") or next(iter(t["splits"].values()), {})
    if r.get("auc_tta") is None:
        return f"test-time augmentation ({', '.join(t['views'])})"
    p = f", DeLong p = {r['p_value']:.3g}" if r.get("p_value") is not None else ""
    return (f"test-time augmentation ({', '.join(t['views'])}): AUC {r['auc_no_tta']:.3f} without, "
            f"{r['auc_tta']:.3f} with{p}")


def evidence_lines(metrics: dict) -> list[str]:
    """One line per evidence section present, plus the conformal coverage statement when coverage falls short."""
    lines = []
    c = metrics.get("conformal")
    if c and c.get("coverage") is not None:
        lines.append(_conformal(c))
        gap = 100 * (c["target_coverage"] - c["coverage"])
        if "short by" in c.get("note", ""):
            lines.append(f"conformal coverage on {c['split']} is {gap:.1f} points short of the requested level: "
                         f"{c['split']} differs from validation (the report says more)")
    if metrics.get("referral"):
        lines.append(_referral(metrics["referral"]))
    if metrics.get("seeds"):
        lines.append(_seeds(metrics["seeds"]))
    if metrics.get("tta"):
        lines.append(_tta(metrics["tta"]))
    if metrics.get("sample_size"):
        lines.append("sample size: " + "; ".join(sample_size_lines(metrics["sample_size"])))
    for table in (metrics.get("subgroups") or {}).values():
        lines += [f"subgroups: {w}" for w in table.get("warnings", [])[:3]]
    return lines
