"""Report section: sample-size adequacy (the AUC CI half-width the test set affords, the n for a target width)."""
from __future__ import annotations

from medfit.report.evidence_html import note


def sample_size_lines(s: dict) -> list[str]:
    """Plain sentences (also used by the end-of-run summary)."""
    lines = [f"{s['split']}: {s['n']} cases at prevalence {s['prevalence']:.3f} give an AUC of {s['auc']:.3f} a "
             f"{100 * s['level']:.0f} % CI half-width of {s['halfwidth']:.3f} ({s['method']})"
             + (f"; the bootstrap CI's half-width is {s['bootstrap_halfwidth']:.3f}"
                if s.get("bootstrap_halfwidth") is not None else "")]
    t = s.get("for_target")
    if t:
        lines.append(f"a half-width of {t['halfwidth']:.3f} needs {t['n']} cases at this prevalence and AUC")
    return lines


def sample_size_section(metrics: dict) -> str:
    """The sentences as a section; empty when not computed."""
    s = metrics.get("sample_size")
    if not s:
        return ""
    return "<h2>Sample size</h2>" + "".join(note(line[0].upper() + line[1:] + ".") for line in sample_size_lines(s))
