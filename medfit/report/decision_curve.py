"""Report section: decision curve analysis per split (net benefit of the model vs treat-all and treat-none)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medfit.evaluate.utility import net_benefit_at  # noqa: E402
from medfit.report.evidence_html import esc, note, table, value  # noqa: E402
from medfit.report.markdown import ordered_splits  # noqa: E402
from medfit.report.page import figure_to_data_uri, img_tag  # noqa: E402


def curves(metrics: dict) -> dict[str, dict]:
    """Split -> its decision curve, in split order."""
    splits = metrics.get("splits", {})
    return {s: splits[s]["decision_curve"] for s in ordered_splits(splits) if splits[s].get("decision_curve")}


def decision_curve_figure(split: str, curve: dict) -> str:
    """Net benefit against threshold probability: model, treat all, treat none."""
    t = np.asarray(curve["thresholds"])
    nb = curve["net_benefit"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(t, nb["model"], color="C0", lw=2, label="model")
    ax.plot(t, nb["treat_all"], color="C1", ls="--", label="treat all")
    ax.plot(t, nb["treat_none"], color="#555", ls=":", label="treat none")
    prevalence = curve["prevalence"]
    ax.set(xlabel="threshold probability", ylabel="net benefit", xlim=(t.min(), t.max()),
           ylim=(-0.05 * max(prevalence, 0.2), prevalence * 1.1 + 0.01),
           title=f"Decision curve: {split} (n {curve['n']}, prevalence {prevalence:.2f})")
    ax.legend(loc="upper right", fontsize=8)
    return img_tag(figure_to_data_uri(fig), f"decision curve {split}")


def decision_curve_section(metrics: dict) -> str:
    """One figure per split and a table of net benefit at a few thresholds; empty without decision curves."""
    found = curves(metrics)
    if not found:
        return ""
    rows = [[esc(s), value(r["threshold"]), value(r["model"]), value(r["treat_all"]), value(r["treat_none"]),
             f"{r['interventions_avoided_per_100']:.1f}"] for s, c in found.items() for r in net_benefit_at(c)]
    useful = "; ".join(f"{s}: " + (", ".join(f"{a:.2f}–{b:.2f}" for a, b in c["useful_ranges"]) or "none")
                       for s, c in found.items())
    return ("<h2>Clinical utility: decision curves</h2>"
            + '<div class="figs">' + "".join(decision_curve_figure(s, c) for s, c in found.items()) + "</div>"
            + note(f"Thresholds where the model's net benefit exceeds both treat-all and treat-none: {useful}.")
            + table(["split", "threshold", "net benefit: model", "treat all", "treat none",
                     "interventions avoided per 100"], rows))
