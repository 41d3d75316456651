"""The review page end to end on real images: `medfit validate --folds 2` on chest X-rays holding a near copy, a CT
slice and flipped labels; `medfit review` writes one self-contained page; headless Chromium clicks keep / drop /
relabel and downloads corrections.csv; the next run (data.corrections) drops, relabels and stops flagging."""
import base64
import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from test_report_browser import Chromium

from medfit.cli import main
from medfit.config import config_from_dict
from medfit.data.corrections import apply_corrections, read_corrections
from medfit.data.manifest import Manifest, absolute_ref, build_manifest
from medfit.errors import DataError

CXR = "chest-xray-pneumonia-224"


def test_corrections_by_hand(tmp_path):
    df = pd.DataFrame({"image": [str(tmp_path / f"{k}.png") for k in range(4)], "label": [0, 1, 0, 1],
                       "patient_id": list("abcd"), "site": "s", "split": "train"})
    manifest = Manifest(df, ["label"], ["normal", "pneumonia"], "binary")
    (tmp_path / "c.csv").write_text("image,decision,label,finding\n0.png,drop,,x\n1.png,relabel,normal,x\n"
                                    f"{tmp_path / '2.png'},keep,,x\n")
    out = apply_corrections(manifest, read_corrections(tmp_path / "c.csv", absolute_ref)).df
    assert out["image"].tolist() == [str(tmp_path / f"{k}.png") for k in (1, 2, 3)]
    assert out["label"].tolist() == [0, 0, 1] and out["reviewed"].tolist() == [False, True, False]
    (tmp_path / "bad.csv").write_text("image,decision,label\n9.png,drop,\n")
    with pytest.raises(DataError, match="1 image.s. not in the data"):
        apply_corrections(manifest, read_corrections(tmp_path / "bad.csv", absolute_ref))
    (tmp_path / "bad.csv").write_text("image,decision,label\n1.png,relabel,covid\n")
    with pytest.raises(DataError, match="not one of the classes"):
        apply_corrections(manifest, read_corrections(tmp_path / "bad.csv", absolute_ref))
    (tmp_path / "bad.csv").write_text("image,decision,label\n1.png,remove,\n")
    with pytest.raises(DataError, match="not one of"):
        read_corrections(tmp_path / "bad.csv", absolute_ref)


def pool_csv(shared_data, tmp_path) -> tuple[Path, dict]:
    """24 + 24 real X-rays (3 labels flipped), a near copy of the first NORMAL under another patient, one CT slice."""
    rows = []
    for label in ("NORMAL", "PNEUMONIA"):
        for k, f in enumerate(sorted((shared_data / CXR / "train" / label).glob("*.jpeg"))[:24]):
            flip = label == "PNEUMONIA" and k < 3
            rows.append({"image": str(f), "label": "NORMAL" if flip else label, "patient_id": f.stem})
    copy = tmp_path / "copy.jpeg"
    Image.open(rows[0]["image"]).convert("L").resize((200, 200)).save(copy, quality=70)
    ct = shared_data / "ct-head-dicom-series-ge" / "series" / "10.dcm"
    rows += [{"image": str(copy), "label": "NORMAL", "patient_id": "copy"},
             {"image": str(ct), "label": "NORMAL", "patient_id": "ct"}]
    path = tmp_path / "pool.csv"
    pd.DataFrame(rows).assign(split="train").to_csv(path, index=False)
    return path, {"copy": str(copy), "source": rows[0]["image"], "ct": str(ct)}


def click(browser, session, selector: str) -> None:
    """A real mouse click (pressed + released) at the centre of the element."""
    box = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
        f"(() => {{const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
        "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];})()")},
        session=session)["result"]["value"]
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                  "clickCount": 1}, session=session)


def card(image: str, kind: str) -> str:
    return f'section[data-kind="{kind}"] .card[data-image="{image}"]'


def test_review_page_clicks_download_and_next_run(shared_data, tmp_path):
    csv, files = pool_csv(shared_data, tmp_path)
    config = tmp_path / "cv.yaml"
    config.write_text(
        f"name: rv\noutput_dir: {tmp_path / 'runs'}\n"
        f"data: {{source: csv, root: {csv}, class_names: [NORMAL, PNEUMONIA], image_size: 32, val_fraction: 0.2}}\n"
        "model: {name: test_resnet}\n"
        "train: {epochs: 2, batch_size: 16, optim: {lr: 0.003}, logger: none, progress_bar: false}\n"
        f"evaluate: {{bootstrap: 20}}\naudit: {{cache_dir: {tmp_path / 'cache'}}}\n")
    assert main(["validate", str(config), "--folds", "2"]) == 0
    folder = tmp_path / "runs" / "rv-cv"
    assert main(["review", str(folder)]) == 0
    page = folder / "review.html"
    text = page.read_text()
    assert "<script src" not in text and "http" not in text.split("<body>", 1)[1]  # self-contained
    issues = pd.read_csv(folder / "label_issues.csv")
    issue = issues[~issues["image"].isin(files.values())].iloc[0]  # the first suspected mislabel of the X-rays
    scores = pd.concat([pd.read_csv(f) for f in folder.glob("fold*/ood_scores.csv")])
    assert bool(scores.set_index("image").loc[files["ct"], "outside_training"])  # the CT slice is outside

    browser = Chromium(tmp_path / "chromium-profile")
    downloads = tmp_path / "downloads"
    try:
        browser.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads),
                                                     "eventsEnabled": True})
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        state = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
            "JSON.stringify({images: [...document.images].map(i => i.complete && i.naturalWidth > 0),"
            " kinds: [...document.querySelectorAll('section')].map(s => s.dataset.kind)})")}, session=session)
        state = json.loads(state["result"]["value"])
        assert state["images"] and all(state["images"])
        assert {"duplicates", "label issue", "outside training"} <= set(state["kinds"])
        for image in (files["source"], files["copy"]):  # the copy is a second photo of that patient: keep both
            click(browser, session, card(image, "duplicates") + ' input[value="keep"]')
        click(browser, session, card(files["ct"], "outside training") + ' input[value="drop"]')
        issue_card = card(issue["image"], "label issue")
        click(browser, session, issue_card + ' input[value="relabel"]')
        chosen = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
            f"document.querySelector({json.dumps(issue_card + ' select')}).value")}, session=session)
        count = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
            "document.getElementById('count').textContent")}, session=session)["result"]["value"]
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        (tmp_path / "review.png").write_bytes(base64.b64decode(shot["data"]))
        click(browser, session, "#download")
        deadline = time.time() + 30
        while not (downloads / "corrections.csv").is_file() and time.time() < deadline:
            time.sleep(0.2)
    finally:
        browser.close()
    assert chosen["result"]["value"] == issue["suggested"]
    decided = {files["source"], files["copy"], files["ct"], issue["image"]}
    assert int(count) == len(decided)
    got = pd.read_csv(downloads / "corrections.csv", dtype=str, keep_default_na=False)
    assert list(got.columns) == ["image", "decision", "label", "finding"] and len(got) == len(decided)
    by_image = {r["image"]: (r["decision"], r["label"]) for _, r in got.iterrows()}
    assert by_image[issue["image"]] == ("relabel", issue["suggested"])
    assert by_image[files["ct"]] == ("drop", "") and by_image[files["copy"]] == ("keep", "")

    # the next run honours the decisions: CT dropped, label changed, the kept pair no longer flagged
    raw = yaml.safe_load(config.read_text())
    cfg = config_from_dict({**raw, "data": {**raw["data"], "corrections": str(downloads / "corrections.csv")}})
    manifest = build_manifest(cfg).df
    assert files["ct"] not in set(manifest["image"]) and len(manifest) == 24 + 24 + 1
    row = manifest[manifest["image"] == issue["image"]].iloc[0]
    assert ["NORMAL", "PNEUMONIA"][int(row["label"])] == issue["suggested"] != issue["label"]
    assert main(["audit", str(config), "--set", f"data.corrections={downloads / 'corrections.csv'}"]) == 0
    audit = json.loads((tmp_path / "runs" / "rv" / "audit.json").read_text())
    assert [sorted(g["images"]) for g in audit["reviewed_groups"]] == [sorted([files["source"], files["copy"]])]
    assert audit["counts"]["within_split_groups"] == 0 and "kept by a reviewer" in audit["summary"]
    assert not any("within one split" in w for w in audit["warnings"])

