"""Building blocks of medfit's HTML pages: style, figures as data URIs, formatted metrics."""
from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRIC_ORDER = ["auc", "auc_weighted", "accuracy", "top_2", "kappa", "sensitivity", "specificity", "ppv", "npv", "f1"]
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child,td.text{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1rem} .figs img{max-width:520px;border:1px solid #eee}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.85rem} .muted{color:#777}
.warning{background:#fff4e5;border-left:4px solid #e69500;padding:.4rem .8rem}
"""


def figure_to_data_uri(fig) -> str:
    """PNG data URI of a matplotlib figure (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def img_tag(uri: str, alt: str) -> str:
    """An <img> element for a data URI."""
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def fmt(value, ci=None) -> str:
    """A metric with its CI, or a dash when missing."""
    if value is None:
        return "–"
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if ci:
        text += f" <span class=muted>({ci[0]:.3f}–{ci[1]:.3f})</span>"
    return text
