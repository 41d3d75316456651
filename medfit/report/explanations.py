"""Report sections on explanations and study-level results: the gallery by class (or label), the quality check of
the saliency maps (map resolution, ROAD faithfulness, localisation in masks, randomisation check), each against its
random-map baseline, and the augmented (study-level) comparison."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from medfit.report.page import fmt, img_tag
from medfit.run_folder import RunFolder


def _png(run: RunFolder, rel: str) -> str | None:
    path = run.path / rel
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def class_gallery_section(run: RunFolder) -> str:
    """The overlays written by ``medfit explain RUN --gallery`` for a multiclass or multilabel run, by group."""
    if not run.has("gallery"):
        return ("<h2>Saliency gallery</h2><p class=muted>No saliency gallery yet: run <code>medfit explain RUN "
                "--gallery</code>.</p>")
    g = run.read_json("gallery")
    if "kind" not in g:  # a TP/FP/TN/FN gallery written before the run became a class gallery
        return ""
    out = [f"<h2>Saliency gallery by {'class' if g['kind'] == 'multiclass' else 'label'}</h2>"
           f"<p class=muted>{html.escape(g['method'])} on the {html.escape(g['split'])} split; each map explains the "
           "class the model called; most confident cases first.</p>"]
    groups: dict[str, list[dict]] = {}
    for c in g["cases"]:
        groups.setdefault(c["group"], []).append(c)
    for name, cases in groups.items():
        imgs = []
        for c in cases:
            uri = _png(run, c["png"]) if c.get("png") else None
            if uri:
                alt = f"{name}: {c['image']}"
                imgs.append(f"<figure>{img_tag(uri, alt)}<figcaption class=muted>"
                            f"{html.escape(Path(c['image']).name[-40:])}</figcaption></figure>")
        count = f" ({cases[0]['count']} cases)" if cases[0].get("count") else ""
        body = f"<div class=\"figs gallery\">{''.join(imgs)}</div>" if imgs else "<p class=muted>none</p>"
        out.append(f"<h3>{html.escape(name.replace('->', '→'))}{count}</h3>{body}")
    return "".join(out)


def _vs(value, baseline, digits: int = 3) -> str:
    return f"{fmt(value)} <span class=muted>vs {fmt(baseline)} random</span>" if value is not None else "–"


def quality_section(run: RunFolder) -> str:
    """The explanation quality check written by ``medfit explain RUN --gallery`` (or ``--quality``)."""
    if not run.has("explain_quality"):
        return ("<h3>Are the maps trustworthy?</h3><p class=muted>No explanation check yet: run <code>medfit explain "
                "RUN --quality</code> (map resolution, faithfulness and localisation against random maps, "
                "randomisation check).</p>")
    q = run.read_json("explain_quality")
    layer, f, r = q.get("target_layer") or {}, q["faithfulness"], q["randomisation"]
    rows = []
    if layer:
        size = "x".join(map(str, layer["map_size"]))
        rows.append(("target layer", f"{html.escape(layer['layer'])}: {size} map",
                     html.escape(layer["warning"]) if layer.get("warning") else "fine enough (at least 7x7)"))
    p = f", Wilcoxon p {f['wilcoxon_p']:.3f}" if f.get("wilcoxon_p") is not None else ""
    rows.append(("faithfulness: ROAD (higher: removing the salient pixels hurts the class score more)",
                 _vs(f["road"], f["road_random"]),
                 f"the map beats its random maps on {100 * f['wins']:.0f} % of {f['n']} images{p}; cuts at "
                 f"{', '.join(map(str, f['percentiles']))} %"))
    loc = q.get("localisation")
    if loc:
        rows.append(("pointing game (maximum inside the mask)", _vs(loc["pointing_hit_rate"],
                                                                    loc["pointing_hit_rate_random"]),
                     f"{loc['n']} images with a mask ({html.escape(loc.get('mask', ''))}); the mask covers "
                     f"{100 * loc['mask_area_share']:.0f} % of the input"))
        rows.append(("share of saliency inside the mask", _vs(loc["mass_in_mask"], loc["mass_in_mask_random"]),
                     f"{loc['n_random']} random maps per image"))
    else:
        rows.append(("localisation", "–", "no reference masks in these rows (a manifest 'mask' column enables it)"))
    verdict = "passed" if r["passed"] else "<b>FAILED</b>: the maps barely depend on the learnt weights"
    rows.append(("randomisation check (maps of the trained vs re-initialised model)",
                 f"rank similarity {fmt(r['similarity'])}", f"{verdict} (must be below {r['limit']})"))
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td class=text>{c}</td></tr>" for a, b, c in rows)
    warn = f"<p><b>warning:</b> {html.escape(layer['warning'])}</p>" if layer.get("warning") else ""
    return (f"<h3>Are the maps trustworthy? ({html.escape(q['method'])}, {q['n_images']} {html.escape(q['split'])} "
            f"cases)</h3>{warn}<table><tr><th>check</th><th>result</th><th>meaning</th></tr>{body}</table>")


def study_level_section(run: RunFolder) -> str:
    """The augmented prediction table: key slice alone vs all slices of each study combined."""
    if not run.has("augmented"):
        return ""
    a = run.read_json("augmented")
    rows = []
    for split, r in a["splits"].items():
        if "macro" in r:
            m = r["macro"]
            rows.append((split, r["studies"], m["auc_macro_b"], m["auc_macro_a"], m["difference"], m.get("ci"),
                         m.get("p_value"), "macro AUC, paired bootstrap"))
        else:
            rows.append((split, r["studies"], r.get("auc_single"), r.get("auc_combined"), r.get("difference"),
                         r.get("difference_ci"), r.get("p_value"), "AUC, paired DeLong"))
    body = "".join(f"<tr><td>{html.escape(s)}</td><td>{n}</td><td>{fmt(a1)}</td><td>{fmt(a2)}</td>"
                   f"<td>{fmt(d, ci if ci and None not in ci else None)}</td><td>{fmt(p)}</td><td>{t}</td></tr>"
                   for s, n, a1, a2, d, ci, p, t in rows)
    return (f"<h2>Study level (key slice ± {a.get('neighbours')}, combined by {html.escape(str(a.get('rule')))})</h2>"
            "<table><tr><th>split</th><th>studies</th><th>key slice alone</th><th>combined</th><th>difference</th>"
            f"<th>p</th><th>measure</th></tr>{body}</table>")
