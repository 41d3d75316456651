"""JSON-safe conversion of numpy results."""
import json

import numpy as np

from medfit.run_folder import json_safe


def test_nested_numpy_nan_and_inf():
    value = {"a": np.array([1.0, np.nan]), "b": (np.int64(2), np.float32(0.5)), 3: np.inf, "c": np.bool_(True)}
    out = json_safe(value)
    assert out == {"a": [1.0, None], "b": [2, 0.5], "3": None, "c": True}
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert json_safe(1 / 3, digits=3) == 0.333
