"""A shortened chest X-ray demo run as a 2-seed ensemble with TTA and a pathogen subgroup: the evidence in
metrics.json agrees with an independent recomputation from predictions.csv, every number of the model card and the
TRIPOD+AI checklist is one of metrics.json's, predict writes conformal sets, and the report renders in Chromium."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from chest_subset import chest_subset
from test_report_browser import Chromium, open_page

from medfit.cli import main
from medfit.commands.pipeline import finish_run, train_run
from medfit.config import load_config
from medfit.evaluate.conformal import conformal_sets, format_sets

DEMO = Path(__file__).resolve().parents[1] / "configs" / "chest-xray-demo.yaml"


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence")
    cfg = load_config(DEMO, [f"output_dir={tmp}", "name=short-demo", "data.image_size=32", "data.limit_per_split=90",
                             "model.name=test_resnet", "train.epochs=2", "train.ema_decay=0", "train.logger=csv",
                             "train.progress_bar=false", "train.seeds=[0, 1]", "evaluate.bootstrap=50",
                             "evaluate.tta=[hflip]", "evaluate.subgroup_patterns={pathogen: '_(bacteria|virus)_'}"])
    data = chest_subset(shared_data, tmp / "data", {"train": 500, "test": 60})  # val: 10% of the 1000 by patient
    return finish_run(train_run(cfg, data_dir=str(data)))


def _numbers(obj, out=None) -> set[str]:
    """Every way a number of ``obj`` may be printed: 0-4 decimals, as a percentage with 0-1 decimals, as written."""
    out = set() if out is None else out
    if isinstance(obj, dict):
        for v in obj.values():
            _numbers(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _numbers(v, out)
    elif isinstance(obj, str):  # a sentence the run wrote (e.g. the conformal note's "3.3 points above")
        out |= set(re.findall(r"-?\d+\.\d+", obj))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out |= {f"{float(obj):.{d}f}" for d in range(5)} | {f"{100 * float(obj):.{d}f}" for d in (0, 1)} | {str(obj)}
    return out


def test_ensemble_members_tta_and_conformal_agree_with_the_predictions(run):
    metrics = json.loads(run.file("metrics").read_text())
    pred = pd.read_csv(run.file("predictions"))
    assert {"spread", "no_tta_prob", "member0_prob", "member1_prob"} <= set(pred.columns)
    assert np.allclose(pred["prob"], pred[["member0_prob", "member1_prob"]].mean(axis=1), atol=1e-6)
    assert run.member(1).has_checkpoint and run.member(1).has("config") and not run.member(0).path.exists()
    test, val = pred[pred["split"] == "test"], pred[pred["split"] == "val"]
    aucs = [roc_auc_score(test["label"], test[f"member{s}_prob"]) for s in (0, 1)]
    assert metrics["seeds"]["splits"]["test"]["auc"]["mean"] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert metrics["seeds"]["splits"]["test"]["auc"]["sd"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-6)
    assert metrics["tta"]["splits"]["test"]["auc_no_tta"] == pytest.approx(roc_auc_score(test["label"],
                                                                                           test["no_tta_prob"]), abs=1e-6)
    sets = conformal_sets(val["prob"].to_numpy(), val["label"].to_numpy(), test["prob"].to_numpy(), 0.1)
    conf = metrics["conformal"]
    assert conf["coverage"] == pytest.approx(sets[np.arange(len(test)), test["label"]].mean(), abs=1e-6)
    assert conf["mean_set_size"] == pytest.approx(sets.sum(axis=1).mean(), abs=1e-6) and conf["n"] == len(test) == 90
    assert ("within 3 points" in conf["note"]) or ("short by" in conf["note"]) or ("above" in conf["note"])
    ref = metrics["referral"]
    assert ref["uncertainty"] == "sd of the prediction over 2 ensemble members"
    assert [r["referred"] for r in ref["at"]] == [round(0.05 * 90 + 1e-9), 9, 18]
    groups = {g["group"]: g for g in metrics["subgroups"]["pathogen"]["groups"]}
    assert set(groups) == {"bacteria", "virus", "(no match)"}
    assert groups["(no match)"]["positives"] == 0 and groups["virus"]["positives"] == groups["virus"]["n"]
    assert sum(g["n"] for g in groups.values()) == 90 and metrics["subgroups"]["pathogen"]["warnings"]
    assert metrics["splits"]["test"]["decision_curve"]["thresholds"][0] == 0.01
    assert metrics["sample_size"]["n"] == 90 and metrics["recalibration"]["split"] == "test"


def test_model_card_and_tripod_numbers_are_those_of_the_run(run):
    metrics = json.loads(run.file("metrics").read_text())
    config = yaml.safe_load(run.file("config").read_text())
    train_info = json.loads(run.file("train_info").read_text())
    card, tripod = run.file("model_card").read_text(), run.file("tripod").read_text()
    manifest = pd.read_csv(run.file("manifest"))
    counts = [int(v) for v in manifest.groupby(["split", "label"]).size()] + \
             [int(v) for v in manifest.groupby("split")["patient_id"].nunique()]
    allowed = _numbers([metrics, config, train_info, counts]) | {"385", "078378"}  # the BMJ citation in the checklist
    for text in (card, tripod):
        printed = re.findall(r"-?\d+\.\d+", text)
        assert [x for x in printed if x not in allowed] == []
    assert len(re.findall(r"-?\d+\.\d+", card)) > 60
    test = metrics["splits"]["test"]
    assert f"| test | {test['n']} | {test['positives']} | {test['auc']:.3f} [{test['auc_ci'][0]:.3f}, " in card
    assert f"coverage {metrics['conformal']['coverage']:.3f}" in card and "### Subgroups by pathogen" in card
    assert "Deep ensemble of 2 members (seeds 0, 1)" in card and "- Optimiser adamw, learning rate 0.002" in card


def test_predict_writes_the_conformal_set_beside_the_probability(run, tmp_path):
    out = tmp_path / "test_pred.csv"
    assert main(["predict", str(run.path), "--split", "test", "--out", str(out)]) == 0
    new, pred = pd.read_csv(out), pd.read_csv(run.file("predictions"))
    test, val = pred[pred["split"] == "test"].reset_index(drop=True), pred[pred["split"] == "val"]
    assert list(new.columns[new.columns.get_loc("prob"):][:3]) == ["prob", "prediction_set", "spread"]
    assert np.allclose(new["prob"], test["prob"], atol=1e-6)
    sets = conformal_sets(val["prob"].to_numpy(), val["label"].to_numpy(), new["prob"].to_numpy(), 0.1)
    assert new["prediction_set"].tolist() == format_sets(sets, ["NORMAL", "PNEUMONIA"])


def test_report_renders_the_evidence_in_chromium(run, tmp_path):
    html = run.file("report").read_text()
    for heading in ("Calibration: slope and intercept", "Clinical utility: decision curves", "Conformal prediction sets",
                    "Referral by uncertainty", "Subgroups", "Sample size", "Ensemble and seeds",
                    "Test-time augmentation"):
        assert f"<h2>{heading}</h2>" in html, heading
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        page = open_page(browser, run.file("report"), tmp_path / "report.png")
    finally:
        browser.close()
    assert page["errors"] == [] and all(i["ok"] for i in page["images"]), page["images"]
    alts = {i["alt"] for i in page["images"]}
    assert {"decision curve val", "decision curve test", "risk-coverage curve test"} <= alts
    assert "By pathogen" in page["text"] and "members: mean ± sd" in page["text"]


def test_evaluate_verb_rescores_with_other_evidence_keys(run, capsys):  # last: it changes the run's config
    assert main(["evaluate", str(run.path), "--set", "evaluate.conformal_alpha=0.2", "evaluate.subgroups=[site]"]) == 0
    metrics = json.loads(run.file("metrics").read_text())
    assert metrics["conformal"]["alpha"] == 0.2 and set(metrics["subgroups"]) == {"site", "pathogen"}
    assert "conformal sets (lac, alpha 0.2) on test" in capsys.readouterr().out
    assert main(["evaluate", str(run.path), "--set", "evaluate.tta=[vflip]"]) == 2
    assert "changes the predictions, not their scoring" in capsys.readouterr().err
