"""Out-of-distribution gate: Mahalanobis by hand, and end to end: a small CNN trained on real chest X-rays flags CT
slices (the shared GE head CT series and the NEMA CT) in `medfit predict`, while held-out X-rays stay inside."""
import json

import numpy as np
import pandas as pd
import pytest

from medfit.audit.ood import OodGate, fit_gate
from medfit.cli import main
from medfit.errors import ConfigError

CXR = "chest-xray-pneumonia-224"


def test_gate_by_hand():
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.normal(0, 1, (400, 2)), rng.normal(0, 1, (400, 2)) + [10, 0]])
    labels = np.repeat([0, 1], 400)
    val = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(0, 1, (200, 2)) + [10, 0]])
    gate = fit_gate(train, labels, val, fpr=0.05)
    assert gate.means == pytest.approx(np.array([[0, 0], [10, 0]]), abs=0.15)
    # within-class covariance ~ identity: the distance of (5, 0) is ~5 to either mean, (0, 3) ~3 to the first
    assert gate.distances(np.array([[5.0, 0.0], [0.0, 3.0]])) == pytest.approx([5, 3], rel=0.1)
    assert np.mean(gate.outside(val)) <= 0.05 and gate.threshold == pytest.approx(np.sqrt(5.99), rel=0.15)
    assert gate.outside(np.array([[5.0, 0.0], [0.5, 0.5]])).tolist() == [True, False]
    again = OodGate.from_arrays(gate.arrays())
    assert again.threshold == gate.threshold and np.array_equal(again.precision, gate.precision)
    with pytest.raises(ConfigError, match="audit.ood_fpr"):
        fit_gate(train, labels, val, fpr=1.5)


def xray_csv(shared_data, tmp_path) -> str:
    rows = []
    for split, folder, start, n in (("train", "train", 0, 40), ("val", "train", 100, 16), ("test", "test", 40, 16)):
        for label in ("NORMAL", "PNEUMONIA"):
            for f in sorted((shared_data / CXR / folder / label).glob("*.jpeg"))[start:start + n]:
                rows.append({"image": str(f), "label": label, "patient_id": f"{split}-{f.stem}", "split": split})
    pd.DataFrame(rows).to_csv(tmp_path / "xr.csv", index=False)
    return str(tmp_path / "xr.csv")


def test_ct_slices_are_outside_a_chest_xray_model(shared_data, tmp_path, capsys):
    (tmp_path / "xr.yaml").write_text(
        f"name: xr\noutput_dir: {tmp_path / 'runs'}\n"
        f"data: {{source: csv, root: {xray_csv(shared_data, tmp_path)}, class_names: [NORMAL, PNEUMONIA], "
        "image_size: 32}\nmodel: {name: test_resnet}\n"
        "train: {epochs: 3, batch_size: 16, optim: {lr: 0.003}, logger: none, progress_bar: false}\n"
        "evaluate: {bootstrap: 20}\naudit: {near_duplicates: false, ood_fpr: 0.05}\n")
    assert main(["train", str(tmp_path / "xr.yaml")]) == 0
    run = tmp_path / "runs" / "xr"
    record = json.loads((run / "ood.json").read_text())
    assert record["splits"]["val"]["rate"] <= 0.07 and record["train_n"] == 80
    test_rate = record["splits"]["test"]["rate"]
    ct = [shared_data / "ct-head-dicom-series-ge" / "series" / f"{k:02d}.dcm" for k in (5, 10, 15, 20, 25)]
    ct.append(shared_data / "dicom-samples-nema-wg04" / "693_UNCR.dcm")
    xrays = sorted((shared_data / CXR / "test" / "NORMAL").glob("*.jpeg"))[60:70]
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, ct), *map(str, xrays), "--out", str(tmp_path / "p.csv")]) == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    outside = dict(zip(pred["image"], pred["outside_training"]))
    ct_out = sum(outside[str(p)] for p in ct)
    xr_out = sum(outside[str(p)] for p in xrays)
    distance = dict(zip(pred["image"], pred["ood_distance"]))
    with capsys.disabled():  # the measured figures, shown with -s
        print(f"threshold {record['threshold']:.2f}; CT outside {ct_out} of {len(ct)} (distances "
              f"{[round(distance[str(p)], 1) for p in ct]}); new X-rays outside {xr_out} of {len(xrays)}; "
              f"test split outside {record['splits']['test']['outside']} of {record['splits']['test']['n']}")
    assert ct_out == len(ct) and xr_out <= 2 and test_rate <= 0.25
    assert min(distance[str(p)] for p in ct) > max(distance[str(p)] for p in xrays)
    assert f"outside the training data (OOD gate, distance > {record['threshold']:.2f}): {ct_out + xr_out} of 16" \
        in capsys.readouterr().out
    page = (run / "report.html").read_text()
    assert "Out-of-distribution gate" in page and f"<td>test</td><td>32</td><td>{record['splits']['test']['outside']}" in page
