"""preprocess.on_bad_file: skip drops unreadable rows before training, with a list; error stops with one line (D13)."""
import logging

import numpy as np
import pytest
from PIL import Image

from medfit.cli import main
from medfit.commands.pipeline import prepare_run, train_run
from medfit.config import config_from_dict
from medfit.errors import DataError

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


@pytest.fixture(scope="module")
def folder_with_a_bad_file(shared_data, tmp_path_factory):
    """train/ and test/ class folders of 28 px PneumoniaMNIST PNGs, one patient each, and one damaged PNG in train."""
    root = tmp_path_factory.mktemp("xray")
    with np.load(shared_data / NPZ) as npz:
        for split, key in (("train", "train"), ("test", "test")):
            images, labels = npz[f"{key}_images"], npz[f"{key}_labels"][:, 0]
            for label, name in enumerate(("NORMAL", "PNEUMONIA")):
                folder = root / split / name
                folder.mkdir(parents=True)
                for i in np.flatnonzero(labels == label)[:16]:
                    Image.fromarray(images[i]).save(folder / f"person{split}{i}_{name}.png")
    bad = root / "train" / "PNEUMONIA" / "person9999_damaged.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then nothing an image has
    return root, bad


def config(root, tmp_path, on_bad_file):
    return config_from_dict({
        "name": "bad-file", "output_dir": str(tmp_path / "runs"),
        "data": {"source": "folder", "root": str(root), "image_size": 28, "val_fraction": 0.25},
        "preprocess": {"on_bad_file": on_bad_file},
        "model": {"name": "resnet10t"},
        "train": {"epochs": 1, "batch_size": 16, "logger": "csv", "progress_bar": False},
    })


def test_skip_drops_the_unreadable_row_before_training_and_lists_it(folder_with_a_bad_file, tmp_path, caplog):
    root, bad = folder_with_a_bad_file
    with caplog.at_level(logging.WARNING, logger="medfit"):
        run = train_run(config(root, tmp_path, "skip"))
    manifest = run.read_manifest()
    assert len(manifest) == 64 and str(bad) not in set(manifest["image"])
    skipped = run.read_csv("skipped")
    assert list(skipped["image"]) == [str(bad)] and skipped["split"].iloc[0] in ("train", "val")
    assert str(bad) in skipped["reason"].iloc[0]
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and "1 of 65 rows" in lines[0] and str(run.file("skipped")) in lines[0]
    assert len(run.read_predictions()) == (manifest["split"] != "train").sum()


def test_error_stops_with_one_line_naming_the_file(folder_with_a_bad_file, tmp_path, capsys):
    root, bad = folder_with_a_bad_file
    with pytest.raises(DataError) as err:
        prepare_run(config(root, tmp_path, "error"))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_preprocess_verb_lists_the_same_row(folder_with_a_bad_file, tmp_path, capsys):
    root, bad = folder_with_a_bad_file
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"data: {{source: folder, root: {root}, image_size: 28, val_fraction: 0.25}}\n"
                        f"output_dir: {tmp_path / 'runs'}\npreprocess: {{on_bad_file: skip, ops: [{{name: minmax}}]}}\n")
    assert main(["preprocess", str(cfg_file)]) == 0
    assert "preprocessed 64 of 65 images" in capsys.readouterr().out
