"""The pre-flight check: config ranges, labels per split, model and weights, output path; all before the audit and
before any file is written, every problem at once."""
import logging

import pandas as pd
import pytest

import medfit.commands.pipeline as pipeline
import medfit.commands.tune as tune_verb
from medfit.cli import main
from medfit.commands.preflight import preflight, split_label_problems
from medfit.config import config_from_dict
from medfit.data.manifest import Manifest
from medfit.errors import MedfitError


def xray_csv(shared_data, tmp_path, layout: dict[str, list[int]]) -> str:
    """A CSV manifest of distinct real chest X-rays: per split a list of labels (0 NORMAL, 1 PNEUMONIA)."""
    files = {0: sorted((shared_data / "chest-xray-pneumonia-224" / "train" / "NORMAL").glob("*.jpeg")),
             1: sorted((shared_data / "chest-xray-pneumonia-224" / "train" / "PNEUMONIA").glob("*.jpeg"))}
    used = {0: 0, 1: 0}
    rows = []
    for split, labels in layout.items():
        for y in labels:
            rows.append({"image": str(files[y][used[y]]), "label": y, "patient_id": f"p{len(rows)}", "split": split})
            used[y] += 1
    path = tmp_path / "data.csv"
    pd.DataFrame(rows, columns=["image", "label", "patient_id", "split"]).to_csv(path, index=False)
    return str(path)


def write_config(tmp_path, csv: str) -> str:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"""
name: pre
output_dir: {tmp_path / 'runs'}
data: {{source: csv, root: {csv}, image_size: 28, channels: 1, class_names: [NORMAL, PNEUMONIA]}}
model: {{name: resnet10t}}
train: {{epochs: 1, batch_size: 8, logger: csv, progress_bar: false}}
evaluate: {{bootstrap: 20}}
audit: {{near_duplicates: false}}
""")
    return str(cfg)


BALANCED = {"train": [0, 1] * 6, "val": [0, 1] * 3, "test": [0, 1] * 3}


@pytest.fixture()
def no_expensive_steps(monkeypatch):
    """The audit and the fit must not be reached: a problem found there was found too late."""
    def reached(*args, **kwargs):
        raise AssertionError("an expensive step ran before the problems were reported")
    monkeypatch.setattr(pipeline, "run_audit", reached)
    monkeypatch.setattr(pipeline, "fit_members", reached)
    monkeypatch.setattr(tune_verb, "run_audit", reached)


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err.strip()
    return err[err.index("error: "):].splitlines()


def test_every_problem_is_reported_at_once_before_the_audit_and_nothing_is_written(
        shared_data, tmp_path, capsys, no_expensive_steps):
    cfg = write_config(tmp_path, xray_csv(shared_data, tmp_path, BALANCED))
    code = main(["train", cfg, "--set", "train.batch_size=0", "train.epochs=-1", "evaluate.bootstrap=-3",
                 "model.name=resnet_nosuch", f"model.pretrained={tmp_path / 'absent.safetensors'}"])
    assert code == 2
    lines = error_lines(capsys)
    assert lines[0] == "error: 5 problems found before anything ran (nothing was written):"
    body = "\n".join(lines[1:])
    assert len(lines) == 6 and all(line.startswith("  - ") for line in lines[1:])
    for needle in ("train.batch_size 0: expected a value >= 1", "train.epochs -1: expected a value >= 1",
                   "evaluate.bootstrap -3: expected a value >= 0", "model.name 'resnet_nosuch'",
                   f"{tmp_path / 'absent.safetensors'}: pretrained weights not found"):
        assert needle in body, needle
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("layout, needle", [
    ({**BALANCED, "train": [0] * 12}, "the 'train' split has no images of class 'PNEUMONIA' (it holds 'NORMAL', 12 "
                                      "images)"),
    ({**BALANCED, "val": [1] * 6}, "the 'val' split holds only class 'PNEUMONIA' (6 images)"),
])
def test_a_one_class_training_or_validation_split_stops_the_run_before_the_audit(
        shared_data, tmp_path, capsys, no_expensive_steps, layout, needle):
    csv = xray_csv(shared_data, tmp_path, layout)
    assert main(["train", write_config(tmp_path, csv)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"error: {csv}: ") and needle in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_a_one_class_test_split_is_said_not_silent(shared_data, tmp_path, caplog):
    csv = xray_csv(shared_data, tmp_path, {**BALANCED, "test": [1] * 5})
    cfg = config_from_dict({"output_dir": str(tmp_path / "runs"), "model": {"name": "resnet10t"},
                            "data": {"source": "csv", "root": csv, "image_size": 28,
                                     "class_names": ["NORMAL", "PNEUMONIA"]}})
    with caplog.at_level(logging.WARNING, logger="medfit"):
        manifest = preflight(cfg)
    assert manifest.df["split"].value_counts().to_dict() == {"train": 12, "val": 6, "test": 5}
    said = [r.getMessage() for r in caplog.records]
    assert any("the 'test' split holds only class 'PNEUMONIA' (5 images): its AUC and AUC CI are undefined" in s
               for s in said), said
    assert not (tmp_path / "runs").exists()


def test_multilabel_labels_that_never_change_in_training_are_problems():
    df = pd.DataFrame({"image": list("abcd"), "a": [0, 1, 0, 1], "b": [0, 0, 0, 0],
                       "split": ["train", "train", "val", "val"]})
    problems, warnings = split_label_problems(Manifest(df, ["a", "b"], [], "multilabel"), ("train", "val"))
    assert problems == ["in the 'train' split the label(s) 'b' never change (2 rows): the model cannot learn them; "
                        "add rows where they differ"]
    assert warnings == ["in the 'val' split the label(s) 'b' never change (2 rows): their AUC is undefined there "
                        "and reported as null"]


def test_an_empty_dataset_is_one_line(tmp_path, capsys, no_expensive_steps):
    csv = tmp_path / "empty.csv"
    csv.write_text("image,label,patient_id,split\n")
    assert main(["train", write_config(tmp_path, str(csv))]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "no training rows" in lines[0]


@pytest.mark.parametrize("verb", [["validate", "--folds", "2"], ["tune", "--study", "s"]])
def test_validate_and_tune_check_before_anything(shared_data, tmp_path, capsys, no_expensive_steps, verb):
    cfg = write_config(tmp_path, xray_csv(shared_data, tmp_path, BALANCED))
    assert main([verb[0], cfg, *verb[1:], "--set", "train.batch_size=0", "model.name=resnet_nosuch"]) == 2
    lines = error_lines(capsys)
    assert lines[0].startswith("error: 2 problems") and "train.batch_size 0" in lines[1] and "resnet_nosuch" in lines[2]
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_that_links_outside_output_dir_is_refused(shared_data, tmp_path):
    csv = xray_csv(shared_data, tmp_path, BALANCED)
    (tmp_path / "runs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs" / "pre").symlink_to(tmp_path / "elsewhere")
    cfg = config_from_dict({"name": "pre", "output_dir": str(tmp_path / "runs"), "model": {"name": "resnet10t"},
                            "data": {"source": "csv", "root": csv, "image_size": 28}})
    with pytest.raises(MedfitError, match="outside output_dir; remove that link or choose another name"):
        preflight(cfg)


def test_an_output_dir_that_is_a_file_is_refused(shared_data, tmp_path):
    csv = xray_csv(shared_data, tmp_path, BALANCED)
    (tmp_path / "runs").write_text("not a folder")
    cfg = config_from_dict({"name": "pre", "output_dir": str(tmp_path / "runs"), "model": {"name": "resnet10t"},
                            "data": {"source": "csv", "root": csv, "image_size": 28}})
    with pytest.raises(MedfitError, match="is a file, not a folder"):
        preflight(cfg)
