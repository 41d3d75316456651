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
        if w.get("sha256") or w.get("files"):
            rows.append(("sha256", _hashes(w)))
        rows.append(("tensors loaded", _loaded(p)))
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


def _hashes(record: dict) -> str:
    """The weight file's sha256 (12 hex), or the number of files a sharded model's record hashes."""
    if record.get("sha256"):
        return f"{record['sha256'][:12]} (weight file; every file in the training record)"
    return f"{len(record['files'])} weight files (each in the training record)"


def _loaded(p: dict) -> str:
    """How the tensors loaded: timm's counts against the backbone, or the loading package (open_clip, transformers)."""
    if "matched" in p:
        return (f"{p.get('matched')} of {p.get('backbone_tensors')} backbone tensors ({p.get('missing')} missing, "
                f"{p.get('unexpected')} unexpected)")
    return f"{p['tensors']} tensors ({p['loaded_by']})" if "tensors" in p else f"by {p.get('loaded_by', '?')}"


def _short(values) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values or []) + "]"
