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


@pytest.fixture(scope="module")
def dask_scheduler():
    """The address of a running Dask scheduler with two single-threaded worker processes (as a shared cluster that
    `--cluster ADDRESS` joins would be); one per test module, closed after it."""
    from dask.distributed import LocalCluster  # only the modules that ask for a cluster pay for importing Dask

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address
