"""The audit's fingerprints on Dask: `medfit audit --cluster ADDRESS` gives the serial audit's fingerprints and findings
on all of PneumoniaMNIST (its 27 duplicate groups and 8 train/val leaks); an unreadable image is named."""
import json

import numpy as np
import pytest
from PIL import Image

from medfit.audit.run import compute_fingerprints
from medfit.cli import main
from medfit.errors import DataError
from medfit.preprocess.cluster import Cluster

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def test_findings_and_fingerprints_on_a_cluster_equal_the_serial_audit(shared_data, dask_scheduler, tmp_path):
    cfg = tmp_path / "pmnist.yaml"
    cfg.write_text(f"data: {{source: medmnist, root: {shared_data / NPZ}, image_size: 28}}\n"
                   f"output_dir: {tmp_path / 'runs'}\naudit: {{near_duplicates: false, workers: 1}}\n")
    audits, caches = {}, {}
    for label, extra in (("serial", []), ("dask", ["--cluster", dask_scheduler])):
        code = main(["audit", str(cfg), "--name", label, "--set", f"audit.cache_dir={tmp_path / label}", *extra])
        assert code == 2  # PneumoniaMNIST repeats training images in val: the audit stops, having written its record
        audits[label] = json.loads((tmp_path / "runs" / label / "audit.json").read_text())
        caches[label] = json.loads((tmp_path / label / "fingerprints.json").read_text())
    assert len(caches["serial"]) == 5856 and caches["dask"] == caches["serial"]  # every record, value for value
    serial, dask = ({k: v for k, v in a.items() if k != "timing"} for a in (audits["serial"], audits["dask"]))
    assert dask == serial
    groups = serial["duplicate_groups"]
    assert len(groups) == 27 and sum(set(g["splits"]) == {"train", "val"} for g in groups) == 8 and not serial["ok"]


def test_an_unreadable_image_is_named_in_one_line(shared_data, dask_scheduler, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.load(shared_data / NPZ)["test_images"][0]).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with Cluster(address=dask_scheduler) as cluster:
        with pytest.raises(DataError) as err:
            compute_fingerprints([str(good), str(bad)], tmp_path / "cache", cluster=cluster)
        records = compute_fingerprints([str(good)], tmp_path / "cache", cluster=cluster)
    message = str(err.value)
    assert message.startswith(f"audit: 1 of 2 items failed: {bad}: DataError: ") and "\n" not in message
    assert records["pixel_hash"].tolist() == compute_fingerprints([str(good)])["pixel_hash"].tolist()
