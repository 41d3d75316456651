"""The report's out-of-distribution section: the gate, how many images of each split lie outside the training data,
and thumbnails of the farthest held-out ones."""
from __future__ import annotations

import html
from pathlib import Path

from medfit.report.thumbnails import thumbnail_tag
from medfit.run_folder import RunFolder

THUMB_STYLE = (".thumb{display:inline-block;margin:.3rem;text-align:center;font-size:.8rem;max-width:170px}"
               ".thumb img{image-rendering:pixelated;border:1px solid #ccc}")


def ood_section(run: RunFolder, limit: int = 12) -> str:
    """Counts per split and the held-out images farthest outside (val is outside at the stated rate by design)."""
    if not run.has("ood"):
        return ""
    record = run.read_json("ood")
    rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{c['n']}</td><td>{c['outside']}</td>"
                   f"<td>{(c['rate'] or 0):.1%}</td></tr>" for s, c in record["splits"].items())
    out = [f"<h2>Out-of-distribution gate</h2><style>{THUMB_STYLE}</style>",
           f"<p>{html.escape(record['method'])} on the network's pooled features ({html.escape(record['features'])}); "
           f"threshold {record['threshold']:.2f} puts {record['fpr']:.0%} of validation images outside by design. "
           f"<code>medfit predict</code> marks new images beyond it (<code>outside_training</code>).</p>",
           f"<table><tr><th>split</th><th>n</th><th>outside</th><th>share</th></tr>{rows}</table>"]
    if run.has("ood_scores"):
        scores = run.read_csv("ood_scores")
        held = scores[scores["outside_training"].astype(bool) & ~scores["split"].isin(["train", "val"])]
        held = held.sort_values("ood_distance", ascending=False).head(limit)
        figures = [thumbnail_tag(r["image"], f"{html.escape(Path(str(r['image'])).name[-32:])}<br>{r['split']}, "
                                             f"distance {r['ood_distance']:.1f}") for _, r in held.iterrows()]
        if figures:
            out.append(f"<h3>Held-out images farthest outside</h3><div>{''.join(figures)}</div>")
    return "".join(out)
