"""The report's record of where the network started: warnings from training, the pretrained weights and how many of
their tensors loaded, and the input normalisation the network applies."""
from __future__ import annotations

import html


def warnings_block(metrics: dict) -> str:
    """Training warnings (e.g. a linear probe or LoRA on random weights), shown near the top of the page."""
    lines = metrics.get("warnings") or []
    return "".join(f"<p class=warning><b>warning:</b> {html.escape(w)}</p>" for w in lines)


def weights_section(metrics: dict) -> str:
    """Pretrained weights (source, revision, tensors loaded) and the input normalisation inside the network (applied
    alike by training, predict, explain and the ONNX export), as a small table."""
    rows = []
    p = metrics.get("pretrained")
    if p:
        w = p.get("weights") or {}
        rows.append(("pretrained weights", f"{w.get('source', '?')}" + (f" @ {w['revision']}" if w.get("revision")
                                                                         else "")))
        rows.append(("tensors loaded", f"{p.get('matched')} of {p.get('backbone_tensors')} backbone tensors "
                                       f"({p.get('missing')} missing, {p.get('unexpected')} unexpected)"))
    records = metrics.get("input_normalisation") or []
    for norm in [records] if isinstance(records, dict) else records:
        values = f"mean {_short(norm.get('mean'))}, std {_short(norm.get('std'))}; " if norm.get("mean") else ""
        where = f" ({norm['module']})" if len(records) > 1 and norm.get("module") else ""
        rows.append((f"input normalisation{where}", values + str(norm.get("source", ""))))
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<h2>Weights and inputs</h2><table>{body}</table>"


def _short(values) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values or []) + "]"
