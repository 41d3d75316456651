"""Report section: the clinical covariates a run fused with the image, and how each was encoded on the train rows."""
from __future__ import annotations

import html

from medfit.run_folder import RunFolder


def _row(name: str, kind: str, encoding: str, missing: str) -> str:
    return (f"<tr><td>{html.escape(name)}</td><td>{kind}</td><td>{html.escape(encoding)}</td>"
            f"<td>{html.escape(missing)}</td></tr>")


def covariates_section(run: RunFolder, cfg) -> str:
    """What the covariates were and how they were encoded (empty for an image-only run)."""
    enc = run.read_json_or("covariates")
    if not enc:
        return ""
    rows = [_row(c, "numeric", f"(x - {p['mean']:.4g}) / {p['sd']:.4g}; missing -> mean + indicator",
                 str(p["missing_in_train"])) for c, p in enc["numeric"].items()]
    rows += [_row(c, "categorical", "one-hot: " + ", ".join(f"{k} ({n})" for k, n in p["train_counts"].items()),
                  str(p["train_counts"].get("missing", 0))) for c, p in enc["categorical"].items()]
    head = "<tr><th>covariate</th><th>kind</th><th>encoding (fitted on the training rows)</th><th>missing in train</th></tr>"
    return ("<h2>Clinical covariates</h2>"
            f"<p>Image embedding and {len(enc['features'])} encoded covariate features are concatenated and passed "
            f"through an MLP (hidden {cfg.covariates.hidden}, dropout {cfg.covariates.dropout}): late fusion. "
            f"Encoders fitted on the {enc['n_train']} training rows only; predict and export read the same columns.</p>"
            f"<table>{head}{''.join(rows)}</table>")
