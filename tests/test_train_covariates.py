"""Clinical covariates beside the image on real chest X-rays (PneumoniaMNIST): a covariate that carries label
information raises the test AUC over the image alone; predict, export (ONNX with two inputs), explain and the
report read the same columns."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfit.cli import main
from medfit.commands.pipeline import finish_run, train_run
from medfit.config import ExperimentConfig, updated
from medfit.run_folder import RunFolder

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def covariate_csv(shared_data, path, n_train=200, n_val=150, n_test=300, seed=0):
    """Random official-split images (the npz is sorted by class) with an 'age' that tracks the label and a 'sex'
    that does not."""
    npz = shared_data / NPZ
    rng = np.random.default_rng(seed)
    rows = []
    with np.load(npz) as d:
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            labels = d[f"{split}_labels"][:, 0]
            for i in np.sort(rng.choice(len(labels), n, replace=False)):
                y = int(labels[i])
                rows.append({"image": f"{npz}::{split}_images::{i}", "label": y, "patient_id": f"{split}{i}",
                             "split": split, "age": round(60 + 16 * y + rng.normal(0, 8), 1),
                             "sex": str(rng.choice(["F", "M"]))})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cov")
    csv = covariate_csv(shared_data, tmp / "pmnist.csv")
    base = updated(ExperimentConfig(), {
        "output_dir": str(tmp), "data.source": "csv", "data.root": str(csv), "data.class_names": ["normal", "pneumonia"],
        "data.image_size": 28, "data.val_fraction": 0.0, "model.name": "test_resnet", "train.epochs": 1,
        "train.batch_size": 32, "train.optim.lr": 3e-3, "train.logger": "none", "train.progress_bar": False,
        "evaluate.bootstrap": 0, "audit.enabled": False})
    image = train_run(updated(base, {"name": "image"}))
    fused = finish_run(train_run(updated(base, {"name": "fused", "covariates.numeric": ["age"],
                                                "covariates.categorical": ["sex"]})))
    return tmp, csv, image, fused


def test_a_covariate_with_label_information_raises_auc_over_the_image(runs):
    tmp, csv, image, fused = runs
    test = pd.read_csv(csv).query("split == 'test'")
    age_auc = roc_auc_score(test["label"], test["age"])
    pred = {name: run.read_predictions().query("split == 'test'") for name, run in (("image", image), ("fused", fused))}
    auc = {k: roc_auc_score(p["label"], p["prob"]) for k, p in pred.items()}
    # measured: image 0.895, age alone 0.922, image + age + sex 0.945
    assert auc["fused"] > auc["image"] + 0.03 and auc["fused"] > age_auc, (auc, age_auc)
    enc = json.loads((fused.path / "covariates.json").read_text())
    assert enc["features"] == ["age", "age=missing", "sex=F", "sex=M"] and enc["n_train"] == 200
    train = pd.read_csv(csv).query("split == 'train'")
    assert enc["numeric"]["age"]["mean"] == pytest.approx(train["age"].mean())  # fitted on the train rows only
    html = (fused.path / "report.html").read_text()
    assert "Clinical covariates" in html and "one-hot: F (" in html


def test_predict_export_and_explain_read_the_covariates(runs, capsys):
    tmp, csv, _, fused = runs
    pred = fused.read_predictions().query("split == 'test'")
    out = tmp / "again.csv"
    assert main(["predict", str(fused.path), "--split", "test", "--out", str(out)]) == 0
    np.testing.assert_allclose(pd.read_csv(out)["prob"], pred["prob"], atol=1e-5)
    # the same images with the ages shuffled: the model reads the covariate, so the AUC falls
    rows = pd.read_csv(csv).query("split == 'test'")
    shuffled = rows.assign(age=np.random.default_rng(1).permutation(rows["age"].to_numpy()))
    shuffled.to_csv(tmp / "shuffled.csv", index=False)
    assert main(["predict", str(fused.path), "--manifest", str(tmp / "shuffled.csv"), "--out", str(out)]) == 0
    assert roc_auc_score(rows["label"], pd.read_csv(out)["prob"]) < roc_auc_score(pred["label"], pred["prob"]) - 0.03
    rows.drop(columns="age").to_csv(tmp / "no_age.csv", index=False)
    assert main(["predict", str(fused.path), "--manifest", str(tmp / "no_age.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no column(s) ['age']" in err and "\n" not in err
    # ONNX with two inputs (image, covariates), faithful to PyTorch and usable by predict --onnx
    assert main(["export", str(fused.path)]) == 0
    info = json.loads((fused.path / "model.json").read_text())
    assert info["covariates"]["input"] == [None, 4] and info["max_abs_difference"] <= 1e-4
    assert main(["predict", str(fused.path), "--split", "test", "--onnx", str(fused.path / "model.onnx"),
                 "--out", str(out)]) == 0
    np.testing.assert_allclose(pd.read_csv(out)["prob"], pred["prob"], atol=1e-4)
    # saliency of a covariate run: each case explained with its own covariates bound
    assert main(["explain", str(fused.path), "--gallery", "--per-group", "1"]) == 0
    gallery = RunFolder(fused.path).read_json("gallery")
    probs = dict(zip(pred["image"], pred["prob"]))
    assert gallery["cases"] and all(abs(c["prob"] - probs[c["image"]]) < 1e-4 for c in gallery["cases"])
