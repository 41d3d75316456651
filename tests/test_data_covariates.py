"""Covariate encoding: fitted on the training rows only, standardised numbers with missing indicators, one-hot
categories; the values checked by hand."""
import logging

import numpy as np
import pandas as pd
import pytest

from medfit.config import CovariatesConfig, ExperimentConfig, updated
from medfit.data.covariates import covariate_width, encode_covariates, fit_covariates
from medfit.errors import ConfigError, DataError

CFG = CovariatesConfig(numeric=["age"], categorical=["sex"])


def test_encoder_is_fitted_on_train_and_applied_to_new_rows(caplog):
    train = pd.DataFrame({"age": [50.0, 70.0, np.nan, 60.0], "sex": ["F", "M", "F", ""]})
    enc = fit_covariates(train, CFG)
    assert enc["numeric"]["age"] == {"mean": 60.0, "sd": pytest.approx(np.std([50, 70, 60])), "missing_in_train": 1}
    assert enc["categorical"]["sex"]["categories"] == ["F", "M", "missing"]
    assert enc["features"] == ["age", "age=missing", "sex=F", "sex=M", "sex=missing"] and covariate_width(enc) == 5
    sd = np.std([50, 70, 60])
    new = pd.DataFrame({"age": [80, None, "65"], "sex": ["M", "F", "X"]})
    with caplog.at_level(logging.WARNING, logger="medfit"):
        x = encode_covariates(new, enc)
    np.testing.assert_allclose(x, [[20 / sd, 0, 0, 1, 0], [0, 1, 1, 0, 0], [5 / sd, 0, 0, 0, 0]], rtol=1e-6)
    assert "never had" in caplog.text and "'X'" in caplog.text  # the unseen category is said, not hidden
    assert fit_covariates(train, CovariatesConfig()) is None and covariate_width(None) == 0


def test_covariate_errors_name_the_column():
    with pytest.raises(DataError, match=r"no column\(s\) \['age'\]"):
        fit_covariates(pd.DataFrame({"sex": ["F"]}), CFG)
    with pytest.raises(DataError, match=r"'age' is numeric but holds 'old'.*covariates.categorical"):
        fit_covariates(pd.DataFrame({"age": [1, "old"], "sex": ["F", "M"]}), CFG)
    with pytest.raises(DataError, match="no value in the training rows"):
        fit_covariates(pd.DataFrame({"age": [np.nan], "sex": ["F"]}), CFG)
    with pytest.raises(ConfigError, match="each column once"):
        updated(ExperimentConfig(), {"covariates.numeric": ["age"], "covariates.categorical": ["age"]})
    with pytest.raises(ConfigError, match="late fusion takes model.kind open_clip or timm"):
        updated(ExperimentConfig(), {"covariates.numeric": ["age"], "model.kind": "monai3d", "volume.mode": "3d"})
