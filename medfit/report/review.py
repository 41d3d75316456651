"""The review page: one self-contained HTML file (no server) listing duplicate groups, suspected label issues and
out-of-distribution cases with thumbnails side by side. A reviewer marks each image keep / drop / relabel and
downloads the decisions as a CSV that ``data.corrections`` applies on the next run."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from medfit.data.corrections import reviewed_mask
from medfit.errors import DataError
from medfit.report.page import STYLE
from medfit.report.thumbnails import thumbnail_uri
from medfit.run_folder import ProtocolFolder, RunFolder, write_text

REVIEW_STYLE = """
.item{border:1px solid #ddd;border-radius:6px;padding:.6rem;margin:.8rem 0}
.item h3{margin:.1rem 0 .4rem;font-size:1rem} .cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{border:1px solid #eee;padding:.4rem;width:190px;font-size:.8rem} .card img{image-rendering:pixelated;
max-width:180px;display:block;margin:0 auto .3rem} .card .name{word-break:break-all}
.card.keep{background:#eef8ee} .card.drop{background:#fbeaea} .card.relabel{background:#eef2fb}
#bar{position:sticky;top:0;background:#fff;padding:.5rem 0;border-bottom:1px solid #ddd;z-index:1}
"""
SCRIPT = r"""
const decisions = () => {
  const seen = new Set();
  return [...document.querySelectorAll('.card')].map(card => {
    const picked = card.querySelector('input[type=radio]:checked');
    if (!picked || seen.has(card.dataset.image)) return null;
    seen.add(card.dataset.image);
    const label = picked.value === 'relabel' ? card.querySelector('select').value : '';
    return {image: card.dataset.image, decision: picked.value, label: label, finding: card.dataset.finding};
  }).filter(Boolean);
};
function sync(source) {  // one decision per image: every card of the same image follows the one just changed
  const picked = source.querySelector('input[type=radio]:checked');
  document.querySelectorAll('.card').forEach(card => {
    if (card === source || card.dataset.image !== source.dataset.image) return;
    if (picked) card.querySelector(`input[value=${picked.value}]`).checked = true;
    card.querySelector('select').value = source.querySelector('select').value;
  });
}
const quote = v => /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
function refresh() {
  document.querySelectorAll('.card').forEach(card => {
    const picked = card.querySelector('input[type=radio]:checked');
    card.className = 'card' + (picked ? ' ' + picked.value : '');
  });
  document.getElementById('count').textContent = decisions().length;
}
function download() {
  const rows = [['image', 'decision', 'label', 'finding'], ...decisions().map(d => [d.image, d.decision, d.label, d.finding])];
  const blob = new Blob([rows.map(r => r.map(quote).join(',')).join('\n') + '\n'], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'corrections.csv';
  document.body.appendChild(a);
  a.click();
  a.remove();
}
document.addEventListener('change', e => {
  const card = e.target.closest('.card');
  if (card) sync(card);
  refresh();
});
document.getElementById('download').addEventListener('click', download);
refresh();
"""


def _names(class_names: list[str]):
    """A label value (index or name) in the user's class names."""
    def name(value) -> str:
        text = str(value)
        if text.lstrip("-").isdigit() and class_names and 0 <= int(text) < len(class_names):
            return class_names[int(text)]
        return text
    return name


def duplicate_items(audit: dict, class_names: list[str]) -> list[dict]:
    """One item per duplicate group of an audit record (leaks and label conflicts first)."""
    name = _names(class_names)
    groups = sorted(audit.get("duplicate_groups", []), key=lambda c: (not c.get("conflict"), not c.get("cross_split")))
    items = []
    for c in groups:
        what = "label conflict" if c.get("conflict") else "across splits" if c.get("cross_split") else "within a split"
        removed = set(c.get("removed", []))
        images = [{"image": img, "label": name(lab), "split": split}
                  for img, lab, split in zip(c["images"], c["labels"], c["splits"]) if img not in removed]
        if len(images) > 1:
            items.append({"kind": "duplicates", "title": f"{c['kind']} duplicates, {what}", "images": images,
                          "suggested": ""})
    return items


def label_issue_items(table: pd.DataFrame) -> list[dict]:
    """One item per suspected mislabel, the suggested class preselected for a relabel."""
    return [{"kind": "label issue", "title": f"suspected label issue #{int(r['rank'])}: given {r['label']} "
                                             f"(p {r['p_label']:.2f}), suggested {r['suggested']}",
             "images": [{"image": str(r["image"]), "label": str(r["label"]), "split": f"fold {r['fold']}"}],
             "suggested": str(r["suggested"])} for _, r in table.iterrows()]


def ood_items(scores: pd.DataFrame, class_names: list[str]) -> list[dict]:
    """One item per held-out image outside the training data (validation's by-design share left out)."""
    name = _names(class_names)
    held = scores[scores["outside_training"].astype(bool) & ~scores["split"].isin(["train", "val"])
                  & ~reviewed_mask(scores)]
    return [{"kind": "outside training", "title": f"outside the training data: distance {r['ood_distance']:.1f}",
             "images": [{"image": str(r["image"]), "label": name(r.get("label", "")), "split": str(r["split"])}],
             "suggested": ""} for _, r in held.sort_values("ood_distance", ascending=False).iterrows()]


def _class_names(path: Path) -> list[str]:
    run, protocol = RunFolder(path), ProtocolFolder(path)
    if run.is_run:
        return list(run.read_config().data.class_names)
    return list((protocol.read_json_or("result", {}) or {}).get("class_names", []))


def collect_items(path: str | Path, limit: int = 50) -> list[dict]:
    """The findings of a run folder (duplicates, OOD cases) or a k-fold folder (label issues, and its fold runs'
    duplicates and OOD cases), each kind capped at ``limit``."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; give a run folder or a k-fold folder (<name>-cv)")
    names = _class_names(path)
    folders = [path, *sorted(p for p in path.iterdir() if RunFolder(p).is_run)]
    dups, ood = [], []
    for folder in folders:
        run = RunFolder(folder)
        if run.has("audit"):
            dups += duplicate_items(run.read_json("audit"), names or _class_names(folder))
        if run.has("ood_scores"):
            ood += ood_items(run.read_csv("ood_scores"), names or _class_names(folder))
    protocol = ProtocolFolder(path)
    issues = label_issue_items(protocol.read_csv("label_issues")) if protocol.has("label_issues") else []
    return _unique(dups)[:limit] + issues[:limit] + _unique(ood)[:limit]


def _unique(items: list[dict]) -> list[dict]:
    """Each finding listed once, by kind and images (fold runs share duplicate groups; folders may overlap)."""
    seen, out = set(), []
    for item in items:
        key = (item["kind"], tuple(sorted(i["image"] for i in item["images"])))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _card(image: dict, item: dict, n: int, class_names: list[str]) -> str:
    """One image with its keep / drop / relabel choice (relabel: a class list, the suggestion preselected)."""
    uri = thumbnail_uri(image["image"], 160)
    img = f'<img src="{uri}" alt="{html.escape(image["image"])}">' if uri else "<p class=muted>(unreadable)</p>"
    chosen = item["suggested"] or next((c for c in class_names if c != image["label"]), "")
    options = "".join(f'<option{" selected" if c == chosen else ""}>{html.escape(c)}</option>' for c in class_names)
    radios = "".join(f'<label><input type=radio name="d{n}" value="{v}"> {v}</label> ' for v in ("keep", "drop",
                                                                                                "relabel"))
    return (f'<div class=card data-image="{html.escape(image["image"])}" data-finding="{html.escape(item["kind"])}">'
            f'{img}<div class=name>{html.escape(Path(image["image"]).name[-48:])}</div>'
            f'<div>{html.escape(image["split"])} · label <b>{html.escape(image["label"])}</b></div>'
            f'<div>{radios}</div><div>relabel to <select>{options}</select></div></div>')


def review_page(items: list[dict], class_names: list[str], sources: list[str]) -> str:
    """The page: a sticky bar with the decision count and the download button, then one block per finding."""
    counter, blocks = 0, []
    for k, item in enumerate(items):
        cards = []
        for image in item["images"]:
            cards.append(_card(image, item, counter, class_names))
            counter += 1
        blocks.append(f'<section class=item data-kind="{html.escape(item["kind"])}" id="item{k}">'
                      f'<h3>{html.escape(item["title"])}</h3><div class=cards>{"".join(cards)}</div></section>')
    kinds = {kind: sum(i["kind"] == kind for i in items) for kind in ("duplicates", "label issue", "outside training")}
    bar = (f'<div id=bar><button id=download>Download decisions (corrections.csv)</button> '
           f'<span id=count>0</span> image(s) decided · {json.dumps(kinds)[1:-1].replace(chr(34), "")}</div>')
    intro = ("<p>Mark each image <b>keep</b> (it is right: stop flagging it), <b>drop</b> (leave it out of the data) or "
             "<b>relabel</b> (to the class chosen below it), then download the decisions and set "
             "<code>data.corrections: PATH/corrections.csv</code> in the config: the next run applies them before "
             f"any split is drawn. Sources: {html.escape(', '.join(sources))}.</p>")
    body = "".join(blocks) or "<p>Nothing to review: no duplicate groups, label issues or outside cases.</p>"
    return (f"<!doctype html><html><head><meta charset=utf-8><title>medfit · review</title><style>{STYLE}"
            f"{REVIEW_STYLE}</style></head><body><h1>Review the data</h1>{bar}{intro}{body}"
            f"<script>{SCRIPT}</script></body></html>")


def write_review(paths: list[str | Path], out: str | Path | None = None, limit: int = 50) -> tuple[Path, list[dict]]:
    """Collect the findings of the folders and write the page (default: the first folder's review page)."""
    items = [item for p in paths for item in collect_items(p, limit)]
    names = next((n for n in (_class_names(Path(p)) for p in paths) if n), [])
    items = _unique(items)
    page = review_page(items, names, [str(p) for p in paths])
    path = RunFolder(paths[0]).write_text("review", page) if out is None else write_text(Path(out), page)
    return path, items
