"""Plain JSON data from numpy results: arrays and tuples to lists, numpy scalars to Python, NaN/inf to None."""
from __future__ import annotations

import math

import numpy as np


def json_safe(value, digits: int | None = None):
    """``value`` with every nested number JSON-safe (NaN and infinities become None; floats rounded to ``digits``)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v, digits) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return None
        return round(float(value), digits) if digits is not None else float(value)
    return value
