"""Shift between development and test: metric CIs that part, and the domain classifier (val vs test inputs)."""
import numpy as np
import pandas as pd
import pytest

from medfit.config import config_from_dict
from medfit.evaluate.shift import domain_auc, domain_classifier, evaluate_shift, metric_shifts, pixel_features
from medfit.run_folder import RunFolder

# the chest X-ray demo's val and test rows at the carried threshold (rounded)
DEMO = {"splits": {
    "val": {"n": 520, "auc": 0.997, "auc_ci": [0.993, 0.999], "sensitivity": 0.97, "sensitivity_ci": [0.95, 0.985],
            "specificity": 0.991, "specificity_ci": [0.975, 1.0], "ppv": 0.997, "ppv_ci": [0.99, 1.0]},
    "test": {"n": 624, "auc": 0.93, "auc_ci": [0.91, 0.95], "sensitivity": 0.985, "sensitivity_ci": [0.97, 0.995],
             "specificity": 0.479, "specificity_ci": [0.415, 0.543], "ppv": 0.76, "ppv_ci": [0.73, 0.79]},
}}


def test_metrics_whose_cis_part_are_findings_largest_first():
    found = metric_shifts(DEMO)
    assert [(f["split"], f["metric"]) for f in found] == [("test", "specificity"), ("test", "ppv"), ("test", "auc")]
    spec = found[0]
    assert spec["difference"] == pytest.approx(0.479 - 0.991) and spec["reference_ci"] == [0.975, 1.0]
    # sensitivity: 0.97 (0.95-0.985) vs 0.985 (0.97-0.995) overlap, so no finding
    assert not metric_shifts({"splits": {"val": DEMO["splits"]["val"], "test": {**DEMO["splits"]["val"]}}})
    assert not metric_shifts({"splits": {"test": DEMO["splits"]["test"]}})  # no reference split: nothing to compare


def test_proportions_use_wilson_intervals_that_never_collapse_to_a_point():
    # val specificity 17/17 at the threshold chosen there: the bootstrap CI is [1, 1], Wilson's [0.816, 1]
    val = {"specificity": 1.0, "specificity_ci": [1.0, 1.0], "wilson_ci": {"specificity": [0.816, 1.0]}}
    test = {"specificity": 0.857, "specificity_ci": [0.731, 0.964], "wilson_ci": {"specificity": [0.70, 0.94]}}
    assert not metric_shifts({"splits": {"val": val, "test": test}})
    test = {"specificity": 0.479, "specificity_ci": [0.415, 0.543], "wilson_ci": {"specificity": [0.416, 0.543]}}
    (found,) = metric_shifts({"splits": {"val": val, "test": test}})
    assert found["reference_ci"] == [0.816, 1.0] and found["ci"] == [0.416, 0.543]


def test_domain_auc_is_chance_for_one_distribution_and_high_for_two():
    rng = np.random.default_rng(0)
    same = domain_auc(rng.normal(size=(300, 20)), rng.normal(size=(300, 20)))
    assert abs(same["auc"] - 0.5) < 0.07 and same["auc_ci"][0] < 0.5 < same["auc_ci"][1]
    shifted = rng.normal(size=(300, 20))
    shifted[:, 3] += 1.5  # one feature (e.g. the mean brightness of one region) moved by 1.5 sd
    moved = domain_auc(rng.normal(size=(300, 20)), shifted)
    assert moved["auc"] > 0.8 and moved["auc_ci"][0] > 0.5 and moved["n"] == [300, 300]
    assert domain_auc(np.zeros((3, 2)), np.ones((40, 2))) is None  # fewer rows than folds


def test_within_class_auc_separates_a_class_mix_from_an_image_shift():
    rng = np.random.default_rng(1)

    def split(n0, n1):  # the features carry the class only
        y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
        return rng.normal(size=(len(y), 10)) + 2.0 * y[:, None], y

    (a, ya), (b, yb) = split(240, 60), split(60, 240)
    result = domain_classifier({"val": a, "test": b}, {"val": ya, "test": yb}, ["NORMAL", "PNEUMONIA"], "test")
    assert result["auc_ci"][0] > 0.5  # the splits differ overall: another class mix
    assert all(r["auc_ci"][0] < 0.5 for r in result["per_class"].values())  # but not within a class


def test_pixel_features_average_leading_axes_and_pool():
    image = np.zeros((3, 32, 32), np.float32)
    image[0, :16] = 3.0  # top half of the first of three channels
    f = pixel_features(image, size=2)
    assert f.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert pixel_features(np.ones((4, 1, 8, 8)), size=4).shape == (16,)  # a study of 4 slices


def test_a_run_whose_images_are_gone_records_why_the_domain_classifier_did_not_run(tmp_path):
    run = RunFolder(tmp_path / "r")
    cfg = config_from_dict({"data": {"class_names": ["a", "b"]}})
    run.write_csv("manifest", pd.DataFrame({"image": [str(tmp_path / f"{i}.png") for i in range(4)],
                                            "label": [0, 1, 0, 1], "split": ["val", "val", "test", "test"],
                                            "patient_id": list("abcd"), "site": ["s"] * 4}))
    shift = evaluate_shift(run, cfg, DEMO)
    assert shift["findings"][0]["metric"] == "specificity" and shift["domain"] == {}
    assert ".png" in shift["domain_unavailable"]
    off = evaluate_shift(run, config_from_dict({"evaluate": {"domain_classifier": False}}), DEMO)
    assert "domain_unavailable" not in off and off["findings"]
