"""Names of the uncertainty columns a predictions table may hold besides the probabilities (written by
medfit.train.uncertainty, read by the evidence sections)."""
from __future__ import annotations

import re

import pandas as pd

SPREAD = "spread"  # sd of the prediction over ensemble members and/or MC-dropout passes
NO_TTA = "no_tta_"  # prefix: the probability of the unaugmented view alone, when test-time augmentation is on
MEMBER = re.compile(r"^member(\d+)_(.+)$")


def member_column(seed: int, column: str) -> str:
    """The column of one ensemble member's own probability, e.g. ``member2_prob``."""
    return f"member{int(seed)}_{column}"


def member_seeds(pred: pd.DataFrame, column: str) -> list[int]:
    """The seeds whose own probability ``column`` the table holds, in column order."""
    return [int(m.group(1)) for m in map(MEMBER.match, pred.columns) if m and m.group(2) == column]
