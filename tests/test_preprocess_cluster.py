"""Preprocessing on Dask: `medfit preprocess --workers 2` fills a cache identical, entry for entry and bit for bit, to
the serial run's on real chest X-rays; a bad file is reported by name, never dropped silently; a flaky item is retried."""
import json
from pathlib import Path

import numpy as np
import pytest

from medfit.cli import main
from medfit.preprocess.cluster import Cluster, failures_line

XRAYS = "chest-xray-pneumonia-224"


@pytest.fixture(scope="module")
def xray_folder(shared_data, tmp_path_factory):
    """train/ and test/ class folders of 22 real chest X-rays (links to the shared files) and one damaged JPEG."""
    root = tmp_path_factory.mktemp("xrays")
    for split, n in (("train", 6), ("test", 5)):
        for label in ("NORMAL", "PNEUMONIA"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for src in sorted((shared_data / XRAYS / split / label).glob("*.jpeg"))[:n]:
                (folder / src.name).symlink_to(src)
    bad = root / "train" / "PNEUMONIA" / "person9999_bacteria_1.jpeg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)  # a JPEG start, then nothing an image has
    return root, bad


def entries(cache: Path) -> dict[str, tuple]:
    """Every cache entry: key -> (stored key, digest, image bytes, shape, dtype)."""
    out = {}
    for path in sorted(cache.rglob("*.npz")):
        with np.load(path, allow_pickle=False) as npz:
            image = npz["image"]
            out[path.name] = (str(npz["key"]), str(npz["digest"]), image.tobytes(), image.shape, image.dtype)
    return out


def test_two_workers_fill_the_same_cache_bit_for_bit_and_report_the_bad_file(xray_folder, tmp_path, capsys):
    root, bad = xray_folder
    cfg = tmp_path / "xray.yaml"
    cfg.write_text(f"data: {{source: folder, root: {root}, image_size: 64, val_fraction: 0.25}}\n"
                   f"output_dir: {tmp_path / 'runs'}\npreprocess: {{recipe: radiograph, on_bad_file: skip}}\n")
    outputs = {}
    for label, extra in (("serial", []), ("dask", ["--workers", "2"])):
        assert main(["preprocess", str(cfg), "--set", f"preprocess.cache_dir={tmp_path / label}", *extra]) == 0
        outputs[label] = capsys.readouterr().out
    serial, dask = entries(tmp_path / "serial"), entries(tmp_path / "dask")
    assert len(serial) == 22 and serial.keys() == dask.keys()
    for name, entry in serial.items():
        assert dask[name][:2] == entry[:2] and dask[name][2] == entry[2], name  # key, digest, pixels
    assert "preprocessed 22 of 23 images" in outputs["serial"] and "preprocessed 22 of 23 images" in outputs["dask"]
    records = {label: json.loads((tmp_path / label / "preprocess.json").read_text()) for label in outputs}
    assert [line.split(":")[0] for line in records["dask"]["skipped"]] == [str(bad)]  # by file, as serially
    assert [line.split(":")[0] for line in records["serial"]["skipped"]] == [str(bad)]
    assert records["dask"]["workers"] == 2 and records["dask"]["new_entries"] == 22


def test_a_bad_file_stops_a_run_on_a_joined_cluster_with_one_line_naming_it(xray_folder, dask_scheduler, tmp_path,
                                                                              capsys):
    root, bad = xray_folder
    cfg = tmp_path / "xray.yaml"
    cfg.write_text(f"data: {{source: folder, root: {root}, image_size: 32, val_fraction: 0.25}}\n"
                   f"output_dir: {tmp_path / 'runs'}\npreprocess: {{ops: [{{name: clahe}}], on_bad_file: error}}\n")
    # with the audit on, the split draw (duplicate groups) reads every image first and names the bad one
    assert main(["preprocess", str(cfg), "--cluster", dask_scheduler]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: not a readable image")
    # without it (no duplicate grouping), the cluster's workers meet it: tried once, named in one line
    cfg.write_text(cfg.read_text() + "audit: {enabled: false}\n")
    assert main(["preprocess", str(cfg), "--cluster", dask_scheduler]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: preprocess: 1 of 23 items failed: {bad}: DataError: ")  # a bad file: tried once
    assert "on_bad_file: skip" in err


def flaky(path: str) -> str:
    """Fails the first time it sees ``path`` (a marker file remembers across worker processes), then succeeds."""
    marker = Path(path + ".seen")
    if not marker.exists():
        marker.touch()
        raise OSError(f"{path}: transient read error")
    return Path(path).name


def always_fails(path: str) -> str:
    if path.endswith("bad"):
        raise ValueError(f"{path}: cannot be read")
    return flaky(path)


def test_a_flaky_item_is_retried_and_a_broken_one_reported_by_name(dask_scheduler, tmp_path):
    paths = [str(tmp_path / name) for name in ("a", "bad", "c")]
    with Cluster(address=dask_scheduler) as cluster:
        results, failures = cluster.map(always_fails, paths, paths, progress=False)
    assert results == ["a", None, "c"]  # the first try of a and c failed; the retry succeeded
    assert [(f.name, f.kind) for f in failures] == [(paths[1], "ValueError")] and not failures[0].data_error
    assert failures_line(failures, 3) == (f"1 of 3 items failed (errors other than DataError after 3 tries): "
                                          f"{paths[1]}: ValueError: {paths[1]}: cannot be read")
