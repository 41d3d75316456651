"""A three-class run on the shared chest X-rays (NORMAL / bacterial / viral from the file names) end to end: the
metrics and the report hold every per-class table and curve, the gallery by class and the explanation check (a 2x2
target layer warns), `compare` per class against a second run, `predict` writes the called class, all rendered in
headless Chromium."""
import json
from pathlib import Path

import pandas as pd
import pytest
from chest3 import CLASSES, three_class_csv
from test_report_browser import Chromium, open_page

from medfit.cli import main
from medfit.commands.pipeline import evaluate_all, finish_run, train_run
from medfit.config import config_from_dict
from medfit.report.multi import write_multi_report
from medfit.report.summary import print_summary


def run_config(csv: Path, out: Path, name: str, seed: int, epochs: int):
    return config_from_dict({
        "name": name, "seed": seed, "output_dir": str(out),
        "data": {"source": "csv", "root": str(csv), "task": "multiclass", "class_names": CLASSES, "image_size": 32,
                 "channels": 1, "val_fraction": 0.0},
        "model": {"name": "test_resnet"}, "audit": {"enabled": False},
        "train": {"epochs": epochs, "batch_size": 32, "optim": {"lr": 0.003}, "logger": "csv", "progress_bar": False},
        "evaluate": {"bootstrap": 50}})


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chest3")
    csv = three_class_csv(shared_data, tmp / "three.csv", {"train": 30, "val": 12, "test": 12})
    a = finish_run(train_run(run_config(csv, tmp / "runs", "a", 0, 2)))
    b = train_run(run_config(csv, tmp / "runs", "b", 1, 1))
    evaluate_all(b)  # no report: the side-by-side page reads metrics and predictions only
    return tmp, a, b


def test_three_classes_from_the_file_names(shared_data, tmp_path):
    table = pd.read_csv(three_class_csv(shared_data, tmp_path / "all.csv"))
    counts = table.groupby(["split", "label"]).size().to_dict()
    assert counts[("test", "NORMAL")] == 234 and counts[("test", "bacterial")] + counts[("test", "viral")] == 390
    assert counts[("train", "viral")] > 1000 and table["patient_id"].str.startswith(("train-", "test-")).all()


def test_metrics_hold_every_per_class_table(runs):
    _, a, _ = runs
    m = json.loads(a.file("metrics").read_text())
    assert set(m["threshold"]["per_class"]) == set(CLASSES) and m["threshold"]["chosen_on"] == "val"
    test = m["splits"]["test"]
    block = test["classes"]
    for name in CLASSES:
        entry = block["auc"]["per_class"][name]
        assert entry["positives"] == 12 and entry["auc_ci"][0] <= entry["auc"] <= entry["auc_ci"][1]
        assert len(entry["auc_delong_ci"]) == 2 and len(block["thresholds"][name]["wilson_ci"]["sensitivity"]) == 2
    assert test["auc_ci"][0] <= test["auc"] <= test["auc_ci"][1] and len(test["auc_weighted_ci"]) == 2
    assert sum(map(sum, block["confusion"]["counts"])) == 36 and "top_2" in block["top_k"]
    assert set(block["calibration"]["per_class"]) == set(CLASSES) and "kappa" in block


def test_gallery_quality_check_and_report(runs, capsys):
    tmp, a, _ = runs
    assert main(["explain", str(a.path), "--gallery", "--quality-images", "6"]) == 0
    out = capsys.readouterr().out
    assert "gives a 2x2 saliency map" in out and "randomisation check" in out  # test_resnet at 32 px
    gallery = json.loads(a.file("gallery").read_text())
    groups = {c["group"] for c in gallery["cases"]}
    assert {f"correct {c}" for c in CLASSES} <= groups and any("->" in g for g in groups)
    quality = json.loads(a.file("explain_quality").read_text())
    assert quality["target_layer"]["map_size"] == [2, 2] and quality["faithfulness"]["n"] == 6
    assert quality["faithfulness"]["percentiles"] == [20, 50, 80] and "localisation" not in quality  # no masks
    html = a.file("report").read_text()
    for part in ("Per class (one vs the rest)", "ROC and precision-recall curves", "Agreement", "Cohen's kappa",
                 "Confusion matrix", "Most frequent confusions on test", "Calibration by class",
                 "Saliency gallery by class", "Are the maps trustworthy?", "gives a 2x2 saliency map",
                 "per-class thresholds (youden) chosen on validation"):
        assert part in html, part
    browser = Chromium(tmp / "chromium-profile")
    try:
        page = open_page(browser, a.file("report"), tmp / "report.png")
    finally:
        browser.close()
    assert page["errors"] == [] and all(i["ok"] for i in page["images"])
    alts = [i["alt"] for i in page["images"]]
    assert sum(x.startswith("per-class ROC and PR curves") for x in alts) == 2  # val and test
    assert sum(x.startswith("confusion matrix") for x in alts) == 2
    assert any(x.startswith("calibration reliability per class") for x in alts)
    assert sum(" as " in x for x in alts) >= 1  # confusion examples
    assert sum(x.startswith(("correct ", *(f"{c} -> " for c in CLASSES))) for x in alts) == len(
        [c for c in gallery["cases"] if c.get("png")])


def test_compare_per_class_and_side_by_side(runs, capsys):
    tmp, a, b = runs
    assert main(["compare", str(a.path), str(b.path), "--split", "test", "--bootstrap", "100",
                 "--out", str(tmp / "cmp.json")]) == 0
    cmp = json.loads((tmp / "cmp.json").read_text())["splits"]["test"]
    assert cmp["n"] == 36 and set(cmp["per_class"]) == set(CLASSES)
    assert all(0 <= c["p_holm"] <= 1 and c["p_holm"] >= c["p_value"] for c in cmp["per_class"].values())
    html = write_multi_report([a, b], tmp / "side.html").read_text()
    assert "Paired comparisons per class" in html and "per-class ROC curves of the runs" in html


def test_predict_writes_the_called_class_and_no_filler_columns(runs, shared_data):
    tmp, a, _ = runs
    images = pd.read_csv(tmp / "three.csv").query("split == 'test'")["image"].head(3).tolist()
    assert main(["predict", str(a.path), *images, "--out", str(tmp / "new.csv")]) == 0
    pred = pd.read_csv(tmp / "new.csv", keep_default_na=False)
    # the conformal set beside the probabilities (#16), the OOD gate's distance and flag (#19), the called class
    assert list(pred.columns) == ["image", *(f"prob_{c}" for c in CLASSES), "prediction_set", "ood_distance",
                                  "outside_training", "predicted", "above_threshold"]
    probs = pred[[f"prob_{c}" for c in CLASSES]].to_numpy()
    assert pred["predicted"].tolist() == [CLASSES[k] for k in probs.argmax(1)]
    for row, p in zip(pred.itertuples(), probs):  # each set names classes only, and holds the most likely one
        members = [c for c in str(row.prediction_set).strip("{}").split(", ") if c]  # e.g. "{COVID, NORMAL}"
        assert set(members) <= set(CLASSES) and (not members or CLASSES[p.argmax()] in members), row


def test_summary_shows_the_classes(runs):
    from rich.console import Console

    _, a, _ = runs
    console = Console(record=True, width=160)
    print_summary(a, console)
    text = console.export_text()
    assert "AUC weighted" in text and "kappa" in text and "top-2" in text and "per class on test" in text
    assert all(c in text for c in CLASSES)
