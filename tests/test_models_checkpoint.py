"""Checkpoints are read as tensors and plain data only: a garbage, truncated or code-carrying (pickled __reduce__)
checkpoint is one line in predict, export, explain and fusion members, and its code never runs."""
import os
import re
import shutil

import pytest
import torch

from medfit.cli import main
from medfit.config import config_from_dict, config_to_yaml
from medfit.errors import WeightsError
from medfit.models import build_network
from medfit.run_folder import RunFolder


class Payload:
    """Pickles as a call that creates a marker folder: what a hostile checkpoint would run on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def small_config(tmp_path, **model):
    return config_from_dict({"name": "r", "output_dir": str(tmp_path / "runs"),
                             "data": {"image_size": 28, "channels": 1, "class_names": ["NORMAL", "PNEUMONIA"]},
                             "model": model or {"name": "resnet10t"}})


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> RunFolder:
    """A run folder with a config and a real (untrained) resnet10t checkpoint."""
    tmp = tmp_path_factory.mktemp("good")
    cfg = small_config(tmp)
    run = RunFolder.of(cfg.output_dir, cfg.name)
    run.write_config(cfg)
    run.checkpoints.mkdir(parents=True)
    state = {f"model.{k}": v for k, v in build_network(cfg, 1, load_pretrained=False).state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0}, run.checkpoint("best"))
    return run


def damaged_copy(good_run: RunFolder, tmp_path, damage: str) -> tuple[RunFolder, object]:
    run = RunFolder(shutil.copytree(good_run.path, tmp_path / damage))
    best, marker = run.checkpoint("best"), tmp_path / "code-ran"
    if damage == "garbage":
        best.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        best.write_bytes(best.read_bytes()[:5000])
    else:
        ckpt = torch.load(best, weights_only=True)
        torch.save({**ckpt, "hyper_parameters": Payload(marker)}, best)
    return run, marker


DAMAGES = ["garbage", "truncated", "payload"]
WORDS = {"garbage": "not a readable checkpoint (not a torch.save archive", "truncated": "not a readable checkpoint",
         "payload": "refused: it holds a pickled object (posix.mkdir)"}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("verb", ["predict", "explain", "export"])
def test_a_bad_checkpoint_is_one_line_in_every_verb_and_runs_no_code(good_run, shared_data, tmp_path, capsys, verb,
                                                                     damage):
    run, marker = damaged_copy(good_run, tmp_path, damage)
    image = sorted((shared_data / "chest-xray-pneumonia-224" / "test" / "NORMAL").glob("*.jpeg"))[0]
    args = {"predict": [str(image)], "explain": [str(image)], "export": []}[verb]
    assert main([verb, str(run.path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run.checkpoint('best')}: ") and WORDS[damage] in err[0], err
    assert not marker.exists()


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_bad_fusion_member_checkpoint_is_refused_before_the_audit(good_run, tmp_path, capsys, damage):
    run, marker = damaged_copy(good_run, tmp_path, damage)
    cfg = small_config(tmp_path, kind="fusion", fusion={"members": [{"run": str(run.path)}, {"run": str(good_run.path)}]})
    with pytest.raises(WeightsError, match=re.escape(WORDS[damage])):
        build_network(cfg, 1)
    path = tmp_path / "fusion.yaml"
    path.write_text(config_to_yaml(cfg))
    assert main(["train", str(path), "--set", f"output_dir={tmp_path / 'out'}"]) == 2  # pre-flight: before the audit
    err = capsys.readouterr().err
    assert f"{run.checkpoint('best')}: " in err and WORDS[damage] in err and "Traceback" not in err, err
    assert not marker.exists() and not (tmp_path / "out").exists()
