"""Shared fixtures: the real data folder, offline hubs, quiet logs."""
import os
from pathlib import Path

import medfit  # noqa: F401  (installs the torchvision import hook before anything imports torchvision)
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(os.environ.get("MEDFIT_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real medical images folder (../shared/data): the suite needs it (a missing folder fails, never skips)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder {SHARED_DATA} is absent: put ../shared/data beside the repo (see its README) or "
                    "set MEDFIT_DATA", pytrace=False)
    return SHARED_DATA
