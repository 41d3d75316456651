"""The development-to-test shift in words: the summary's and the report's sentences."""
from medfit.report.shift import domain_sentence, shift_section, shift_sentences

FINDING = {"split": "test", "metric": "specificity", "reference": "val", "reference_value": 0.991, "value": 0.479,
           "difference": 0.479 - 0.991, "reference_ci": [0.975, 1.0], "ci": [0.415, 0.543]}
DOMAIN = {"auc": 0.83, "auc_ci": [0.8, 0.86], "n": [520, 600], "features": "16x16 pixels of the prepared inputs",
          "model": "logistic regression, 5-fold cross-validated",
          "per_class": {"NORMAL": {"auc": 0.9, "auc_ci": [0.85, 0.95]}, "PNEUMONIA": {"auc": 0.7, "auc_ci": [0.6, 0.8]}}}


def test_the_specificity_drop_and_the_domain_classifier_in_words():
    metrics = {"ci_level": 0.95, "shift": {"reference": "val", "findings": [FINDING], "domain": {"test": DOMAIN}}}
    drop, domain = shift_sentences(metrics)
    assert drop == ("Specificity at the validation threshold falls from 0.991 on val (95 % CI 0.975–1.000) to 0.479 "
                    "on test (0.415–0.543): 0.512 lower, beyond both confidence intervals.")
    assert "AUC 0.83 (95 % CI 0.800–0.860; within NORMAL 0.90; within PNEUMONIA 0.70" in domain
    assert domain.endswith("the test data come from a different distribution than the development (val) data.")
    page = shift_section(metrics)
    assert page.startswith("<h2>Shift between development and test</h2>") and "falls from 0.991" in page


def test_no_shift_reads_as_such():
    alike = {**DOMAIN, "auc": 0.52, "auc_ci": [0.47, 0.57], "per_class": {}}
    assert "cannot tell val images from test images" in domain_sentence("test", alike)
    mix = {**DOMAIN, "per_class": {"NORMAL": {"auc": 0.5, "auc_ci": [0.4, 0.6]}}}
    assert "the difference is the class mix" in domain_sentence("test", mix)
    metrics = {"shift": {"findings": [], "domain": {"test": alike}}}
    assert "none beyond the CIs" in shift_section(metrics)
    assert shift_section({}) == "" and shift_sentences({"shift": {"findings": [], "domain": {}}}) == []
