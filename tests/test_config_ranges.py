"""Config value ranges: the defaults are in range; each value that type-checks but cannot work is one line."""
import pytest

from pathlib import Path

from medfit.config import config_from_dict, load_config
from medfit.config.ranges import range_problems

EVERY = ("seed", "data", "model", "train", "evaluate", "audit", "volume", "vlm", "tune", "pretrain")


def test_the_default_config_and_the_shipped_examples_are_in_range():
    assert range_problems(config_from_dict({}), EVERY) == []
    shipped = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert shipped and {p.name: range_problems(load_config(p), EVERY) for p in shipped} == {p.name: [] for p in shipped}


@pytest.mark.parametrize("section, values, lines", [
    ("train", {"epochs": 0, "batch_size": -2, "label_smoothing": 1.0, "optim": {"lr": 0.0}},
     ["train.epochs 0: expected a value >= 1", "train.batch_size -2: expected a value >= 1",
      "train.label_smoothing 1.0: expected a value in [0, 1)", "train.optim.lr 0.0: expected a value > 0"]),
    ("train", {"devices": "", "augment": {"scale": [1.0, 0.5]}},
     ["train.augment.scale [1.0, 0.5]: expected [low, high] with 0 < low <= high",
      "train.devices '': expected a count >= 1 (-1: all), a device list or 'auto'"]),
    ("data", {"val_fraction": 1.0, "image_size": 4}, ["data.val_fraction 1.0: expected a value in [0, 1)",
                                                      "data.image_size 4: expected a value >= 8"]),
    ("evaluate", {"ci_level": 95.0}, ["evaluate.ci_level 95.0: expected a value in (0, 1)"]),
])
def test_out_of_range_values_are_one_line_each(section, values, lines):
    assert range_problems(config_from_dict({section: values})) == lines


def test_only_the_asked_sections_are_checked():
    cfg = config_from_dict({"train": {"batch_size": 0}, "vlm": {"batch_size": 0}})
    assert range_problems(cfg) == ["train.batch_size 0: expected a value >= 1"]
    assert range_problems(cfg, ("vlm",)) == ["vlm.batch_size 0: expected a value >= 1"]


@pytest.mark.parametrize("devices", [1, 2, -1, "auto", "0,1", "[0, 1]"])
def test_lightning_device_forms_are_accepted(devices):
    assert range_problems(config_from_dict({"train": {"devices": devices}})) == []


@pytest.mark.parametrize("translate, ok", [(0.06, True), ([0.02, 0.08], True), ([0.1, 0.05], False), (1.5, False),
                                           ([0.0, 1.0], False)])
def test_translate_is_a_fraction_or_a_range_of_fractions(translate, ok):
    lines = range_problems(config_from_dict({"train": {"augment": {"translate": translate}}}))
    assert lines == ([] if ok else [f"train.augment.translate {translate!r}: expected a fraction in [0, 1) or "
                                    "[low, high] with 0 <= low <= high < 1"])
