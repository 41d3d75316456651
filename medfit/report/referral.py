"""Report section: referral by uncertainty (the risk-coverage curve: accuracy and AUC of the cases the model keeps
when the most uncertain are referred to a clinician)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medfit.report.evidence_html import note, percent, table, value  # noqa: E402
from medfit.report.page import figure_to_data_uri, img_tag  # noqa: E402


def risk_coverage_figure(ref: dict) -> str:
    """Accuracy and AUC of the retained cases against the share referred."""
    c = ref["curve"]
    rate = [100 * r for r in c["referral_rate"]]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(rate, c["accuracy"], color="C0", lw=2, label="accuracy of retained cases")
    ax.plot(rate, [v if v is not None else float("nan") for v in c["auc"]], color="C2", lw=2, label="AUC of retained cases")
    for r in ref["at"]:
        ax.axvline(100 * r["referral_rate"], color="#bbb", lw=1, ls=":")
    ax.set(xlabel="most uncertain cases referred (%)", ylabel="metric on the retained cases",
           title=f"Risk-coverage: {ref['split']} (n {ref['n']})")
    ax.legend(loc="lower right", fontsize=8)
    return img_tag(figure_to_data_uri(fig), f"risk-coverage curve {ref['split']}")


def referral_section(metrics: dict) -> str:
    """The curve, the numbers at the configured rates and the area under the risk-coverage curve."""
    ref = metrics.get("referral")
    if not ref:
        return ""
    first = ref["curve"]
    rows = [["0 %", "0", str(ref["n"]), value(first["accuracy"][0]), value(first["auc"][0])]]
    rows += [[percent(r["referral_rate"], 0), str(r["referred"]), str(r["retained"]), value(r["accuracy"]),
              value(r["auc"])] for r in ref["at"]]
    return ("<h2>Referral by uncertainty</h2>"
            + note(f"Uncertainty: {ref['uncertainty']}. The most uncertain cases of {ref['split']} go to a clinician; "
                   f"the model keeps the rest. Area under the risk-coverage curve {ref['aurc']:.3f} (random referral "
                   f"{ref['aurc_random']:.3f}; lower is better).")
            + '<div class="figs">' + risk_coverage_figure(ref) + "</div>"
            + table(["referred", "cases referred", "cases kept", "accuracy of kept", "AUC of kept"], rows))
