"""Learning curve: patient subsampling by hand, the CI of a point, and the protocol with a stand-in fit function."""
import numpy as np
import pandas as pd
import pytest

import medfit.commands.validate as validate
from medfit.cli import main
from medfit.config import config_from_dict
from medfit.data.manifest import Manifest
from medfit.evaluate.learning_curve import curve_points, learning_curve, subsample_patients
from medfit.run_folder import ProtocolFolder, RunFolder


def pool(patients_per_class: int = 10) -> pd.DataFrame:
    """Train: 2 images per patient, half the patients positive; val and test: 6 one-image patients each."""
    rows = [{"image": f"/x/p{k}_{i}.png", "patient_id": f"p{k}", "label": int(k % 2), "split": "train", "site": "s"}
            for k in range(2 * patients_per_class) for i in range(2)]
    rows += [{"image": f"/x/{s}{k}.png", "patient_id": f"{s}{k}", "label": k % 2, "split": s, "site": "s"}
             for s in ("val", "test") for k in range(6)]
    return pd.DataFrame(rows)


def test_subsample_keeps_whole_patients_per_class_and_the_other_splits():
    m = Manifest(pool(), ["label"], ["0", "1"], "binary")
    half = subsample_patients(m, 0.5, seed=0).df
    train = half[half["split"] == "train"]
    assert train.groupby("label")["patient_id"].nunique().tolist() == [5, 5]
    assert (train.groupby("patient_id").size() == 2).all()  # a patient comes with all of its images
    assert (half["split"] != "train").sum() == 12
    other = subsample_patients(m, 0.5, seed=1).df
    assert set(other.loc[other["split"] == "train", "patient_id"]) != set(train["patient_id"])
    assert subsample_patients(m, 0.01, seed=0).df.query("split == 'train'")["patient_id"].nunique() == 2  # one each
    assert len(subsample_patients(m, 1.0, seed=3).df) == len(m.df)


def test_curve_point_ci_adds_test_variance_and_seed_variance():
    rows = pd.DataFrame({"fraction": [0.5, 0.5, 1.0], "patients": [10, 10, 20], "test_auc": [0.7, 0.8, 0.9],
                         "test_se": [0.03, 0.04, 0.05]})
    p = curve_points(rows, "test", 0.95)
    se = np.sqrt((0.03 ** 2 + 0.04 ** 2) / 2 + np.std([0.7, 0.8], ddof=1) ** 2 / 2)
    assert p[0]["auc"] == pytest.approx(0.75) and p[0]["se"] == pytest.approx(se)
    assert p[0]["ci"] == pytest.approx([0.75 - 1.959964 * se, 0.75 + 1.959964 * se], abs=1e-6)
    assert p[1]["seed_sd"] == 0 and p[1]["se"] == pytest.approx(0.05) and p[1]["patients"] == 20


def stand_in_fit(trained: list):
    """A fit function that trains nothing: the AUC grows with the training patients (0.9 - 2 / patients)."""
    def fit(run_cfg, data_dir=None):
        df = pd.read_csv(run_cfg.data.root)
        n = df.loc[df["split"] == "train", "patient_id"].nunique()
        trained.append((run_cfg.name, run_cfg.seed, n))
        run = RunFolder.of(run_cfg.output_dir, run_cfg.name)
        auc = 0.9 - 2 / n + 0.001 * run_cfg.seed
        run.write_json("metrics", {"splits": {s: {"auc": auc, "auc_delong_ci": [auc - 0.05, auc + 0.05]}
                                              for s in ("val", "test")}})
        return run
    return fit


def test_protocol_trains_every_share_and_seed_and_states_the_verdict(tmp_path):
    pool(20).to_csv(tmp_path / "all.csv", index=False)
    cfg = config_from_dict({"name": "lcx", "output_dir": str(tmp_path / "runs"),
                            "data": {"source": "csv", "root": str(tmp_path / "all.csv"), "val_fraction": 0.0}})
    trained = []
    res = learning_curve(cfg, None, stand_in_fit(trained), fractions=(0.25, 0.5, 1.0), seeds=(0, 1))
    assert [t[2] for t in trained] == [10, 10, 20, 20, 40, 40] and trained[1][:2] == ("lc025-seed1", 1)
    test = res["curves"]["test"]
    assert [p["patients"] for p in test] == [10, 20, 40] and test[2]["auc"] == pytest.approx(0.85 + 0.0005)
    assert res["summary"]["flattened"] is False and "still rising" in res["summary"]["message"]  # +0.05 per doubling
    saved = ProtocolFolder(tmp_path / "runs" / "lcx-lc")
    assert saved.read_json("learning_curve")["summary"] == res["summary"]
    assert len(saved.read_csv("learning_curve_table")) == 6


def test_validate_learning_curve_verb_prints_the_table_and_writes_the_page(tmp_path, monkeypatch, capsys):
    pool(20).to_csv(tmp_path / "all.csv", index=False)
    (tmp_path / "lc.yaml").write_text(f"name: lcv\noutput_dir: {tmp_path / 'runs'}\n"
                                      f"data: {{source: csv, root: {tmp_path / 'all.csv'}, val_fraction: 0.0}}\n")
    monkeypatch.setattr(validate, "train_and_evaluate", stand_in_fit([]))
    assert main(["validate", str(tmp_path / "lc.yaml"), "--learning-curve", "--fractions", "0.1,0.5,1",
                 "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "still rising" in out and "0.850 (" in out and "100 %" in out
    page = ProtocolFolder(tmp_path / "runs" / "lcv-lc").file("learning_curve_report").read_text()
    assert 'alt="learning curve"' in page and "data:image/png;base64," in page and "Verdict: still rising" in page
    assert main(["validate", str(tmp_path / "lc.yaml"), "--learning-curve", "--folds", "3"]) == 2
    assert "give one of --folds K, --train-sites A,B or --learning-curve" in capsys.readouterr().err
