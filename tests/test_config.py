"""Config loading: typed sections, strict keys, key-path errors, overrides, round trip."""
import pytest
import yaml

from medfit.config import ExperimentConfig, config_from_dict, config_to_yaml, load_config
from medfit.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_and_typed_sections(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\ntrain: {epochs: 3, optim: {lr: 1}}\nmodel: {name: resnet18}\n"))
    assert cfg.train.epochs == 3
    assert isinstance(cfg.train.optim.lr, float) and cfg.train.optim.lr == 1.0
    assert cfg.data.task == "binary" and cfg.model.in_chans == 1


@pytest.mark.parametrize("text, message", [
    ("train: {epochz: 3}", "train.epochz: unknown key"),
    ("train: {epochs: three}", "train.epochs: expected int, got str 'three'"),
    ("train: {optim: {lr: true}}", "train.optim.lr: expected float"),
    ("data: {task: regression}", "data.task: expected one of ['binary', 'multiclass', 'multilabel']"),
    ("train: {augment: {scale: [1, x]}}", "train.augment.scale[1]: expected float"),
    ("bogus: 1", "bogus: unknown key"),
    ("model: 3", "model: expected a mapping"),
])
def test_errors_name_the_key_path(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, "name: a\n"), ["train.epochs=7", "model.name=vit_tiny_patch16_224"])
    assert cfg.train.epochs == 7 and cfg.model.name == "vit_tiny_patch16_224"
    (tmp_path / "out.yaml").write_text(config_to_yaml(cfg))
    again = config_from_dict(yaml.safe_load((tmp_path / "out.yaml").read_text()))
    assert again == cfg and isinstance(again, ExperimentConfig)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1,\n"))
