"""`medfit evaluate` checks its options before scoring and writes the run's config only after scoring succeeded."""
import numpy as np
import pandas as pd
import pytest

from medfit.cli import main
from medfit.config import config_from_dict
from medfit.run_folder import RunFolder


@pytest.fixture()
def scored_run(tmp_path) -> RunFolder:
    """A run folder with a config and predictions (val and test, both classes): enough for `medfit evaluate`."""
    cfg = config_from_dict({"name": "e", "output_dir": str(tmp_path), "evaluate": {"bootstrap": 20},
                            "data": {"class_names": ["NORMAL", "PNEUMONIA"]}})
    run = RunFolder.of(cfg.output_dir, cfg.name)
    run.write_config(cfg)
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    run.write_predictions(pd.DataFrame({"image": [f"i{i}.png" for i in range(40)], "patient_id": [f"p{i}" for i in range(40)],
                                        "split": ["val"] * 20 + ["test"] * 20, "label": y,
                                        "prob": np.clip(0.3 * y + rng.uniform(0, 0.7, 40), 0, 1)}))
    return run


@pytest.mark.parametrize("options, needle", [
    (["--threshold", "sensitivity", "--threshold-value", "7"],
     "evaluate.threshold_value 7: with threshold 'sensitivity' it must lie in (0, 1]"),
    (["--threshold", "specificity", "--threshold-value", "0"],
     "evaluate.threshold_value 0: with threshold 'specificity' it must lie in (0, 1]"),
    (["--threshold", "fixed", "--threshold-value", "-0.2"],
     "evaluate.threshold_value -0.2: with threshold 'fixed' it must lie in [0, 1]"),
    (["--bootstrap", "-3"], "evaluate.bootstrap -3: expected a value >= 0"),
])
def test_invalid_options_are_one_line_and_leave_the_run_untouched(scored_run, capsys, options, needle):
    config = scored_run.file("config").read_bytes()
    assert main(["evaluate", str(scored_run.path), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"error: {needle}", err
    assert scored_run.file("config").read_bytes() == config
    assert not scored_run.has("metrics") and not scored_run.has("report")
