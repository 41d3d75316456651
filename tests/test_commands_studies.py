"""Study runs through the verbs (D11, D4): predict and explain read a study row's slice, mask and ROI as training did;
the gallery and key-slice saliency work for them; external validation reads a CSV with relative paths.
Only the CLI is used, so these tests run unchanged on older versions (each failed on 9dd15fa)."""
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from medfit.cli import main

CSV = Path(__file__).resolve().parents[1] / "configs" / "ovcf-mri.csv"
EXAMS = {"06_AKs6": "train", "07_AKs7": "train", "02_AKa3": "val", "03_AKa4": "val", "10_DzZ_T1": "test",
         "11_DzZ_T2": "test"}


def spine_rows(exams: dict, data: Path | None = None) -> pd.DataFrame:
    """Two vertebral bodies (labels 2, 3) of each exam; paths absolute, or with ``data``: links to the files in
    ``data/images`` and paths relative to ``data`` (where the CSV goes)."""
    csv = pd.read_csv(CSV)
    rows = csv[csv["study_id"].isin(exams) & csv["roi_label"].isin([2, 3])].copy()
    rows["split"] = rows["study_id"].map(exams)
    for col in ("image", "mask"):
        paths = [(CSV.parent / p).resolve() for p in rows[col]]
        if data is not None:
            (data / "images").mkdir(parents=True, exist_ok=True)
            for p in set(paths):
                (data / "images" / p.name).symlink_to(p)
            paths = [Path("images") / p.name for p in paths]
        rows[col] = [str(p) for p in paths]
    return rows.drop(columns=["slice_index"]).reset_index(drop=True)


def write_config(tmp: Path, csv: Path, name: str) -> Path:
    """Mask key slices, an ROI crop from the mask (the op that fails without it), resnet10t at 32 px, one epoch."""
    path = tmp / f"{name}.yaml"
    path.write_text(f"""
name: {name}
output_dir: {tmp / 'runs'}
data: {{source: csv, root: {csv}, label_columns: [sequence], class_names: [t1, t2], val_fraction: 0.0,
        image_size: 32}}
preprocess: {{ops: [{{name: crop}}, {{name: minmax}}]}}
volume: {{mode: slice, key_slice: mask}}
model: {{name: resnet10t}}
train: {{epochs: 1, batch_size: 8, logger: csv, progress_bar: false}}
evaluate: {{bootstrap: 20}}
audit: {{enabled: false}}
""")
    return path


@pytest.fixture(scope="module")
def study_run(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("studies")
    spine_rows(EXAMS).to_csv(tmp / "spine.csv", index=False)
    assert main(["train", str(write_config(tmp, tmp / "spine.csv", "spine"))]) == 0
    return tmp / "runs" / "spine", tmp


def test_predict_reads_slice_mask_and_roi_of_new_study_rows(study_run, tmp_path):
    """A new study (image, mask, roi_label; no slice index) gets the prediction training-time inputs give."""
    run, _ = study_run
    manifest, pred = pd.read_csv(run / "manifest.csv"), pd.read_csv(run / "predictions.csv")
    test, expected = manifest[manifest["split"] == "test"], pred[pred["split"] == "test"]["prob"].to_numpy()
    test[["image", "mask", "roi_label"]].to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", str(run), "--manifest", str(tmp_path / "new.csv"), "--out", str(out)]) == 0
    got = pd.read_csv(out)["prob"].to_numpy()
    assert len(got) == len(expected) == 4 and abs(got - expected).max() < 1e-5


def test_explain_manifest_rows_use_their_slice_and_mask(study_run, tmp_path, capsys):
    run, _ = study_run
    manifest, pred = pd.read_csv(run / "manifest.csv"), pd.read_csv(run / "predictions.csv")
    test = manifest[manifest["split"] == "test"]
    test[["image", "mask", "roi_label", "slice_index"]].to_csv(tmp_path / "rows.csv", index=False)
    assert main(["explain", str(run), "--manifest", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "x")]) == 0
    printed = [float(v) for v in re.findall(r"= ([0-9.]+)", capsys.readouterr().out)]
    expected = pred[pred["split"] == "test"]["prob"].to_numpy()
    assert len(printed) == 4 and max(abs(p - e) for p, e in zip(printed, expected)) < 1e-3
    assert len(list((tmp_path / "x").glob("*.png"))) == 4


def test_gallery_and_key_slice_saliency_of_a_study_run(study_run):
    run, _ = study_run
    assert main(["explain", str(run), "--gallery"]) == 0
    gallery = json.loads((run / "plots" / "saliency" / "gallery.json").read_text())
    pred = pd.read_csv(run / "predictions.csv")
    assert gallery["cases"]
    for case in gallery["cases"]:  # the gallery saw the inputs the predictions came from
        assert min(abs(pred.loc[pred["image"] == case["image"], "prob"] - case["prob"])) < 1e-5
    pngs = sorted((run / "plots" / "saliency_studies").glob("*.png"))
    assert len(pngs) == 4 and all(p.stat().st_size > 1000 for p in pngs)


def test_external_validation_reads_a_csv_with_relative_paths(shared_data, tmp_path, capsys):
    """D4: the protocol rewrote the manifest into another folder and relative image/mask paths no longer resolved."""
    exams = {**EXAMS, "12_F02": "test", "17_St1": "test"}
    data = tmp_path / "data"
    rows = spine_rows(exams, data)
    rows["site"] = ["B" if s in ("12_F02", "17_St1") else "A" for s in rows["study_id"]]
    assert not any(os.path.isabs(p) for p in rows["image"])  # images/VB1_....nii.gz, beside the CSV only
    rows.to_csv(data / "sites.csv", index=False)
    assert main(["validate", str(write_config(tmp_path, data / "sites.csv", "ext")), "--train-sites", "A"]) == 0
    result = json.loads((tmp_path / "runs" / "ext-sites" / "sites.json").read_text())
    external = [r for r in result["rows"] if r["site"] == "B"]
    assert len(external) == 1 and external[0]["n"] == 4 and external[0]["positives"] == 4  # both exams are t2
    pred = pd.read_csv(tmp_path / "runs" / "ext-sites" / "predictions.csv")
    calls = pred.loc[pred["site"] == "B", "prob"] >= result["threshold"]["value"]
    assert external[0]["sensitivity"] == pytest.approx(calls.mean())
