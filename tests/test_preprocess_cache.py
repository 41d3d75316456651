"""The on-disk cache of prepared images: hits, misses on changed inputs, corrupt entries, concurrent writers."""
import glob
import multiprocessing
import shutil

import numpy as np
import pandas as pd
import torch
import pytest

import medfit
import medfit.preprocess.prepared as pre
from medfit.config import PreprocessConfig
from medfit.data.rows import Row
from medfit.preprocess import Recipe, load_prepared, prepared_key
from medfit.preprocess.cache import PreparedCache


def _load(ref, cfg, size, channels):
    return load_prepared(Row(ref), Recipe.of(cfg, size, channels))


def _key(ref, cfg, size, channels):
    return prepared_key(Row(ref), Recipe.of(cfg, size, channels))


@pytest.fixture()
def xray(shared_data, tmp_path):
    src = sorted(glob.glob(str(shared_data / "chest-xray-pneumonia-224" / "test" / "PNEUMONIA" / "*.jpeg")))[0]
    dst = tmp_path / "img.jpeg"
    shutil.copy(src, dst)  # a private copy that the test may modify
    return str(dst)


def _entries(cache_dir):
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


def test_cache_hit_and_misses(xray, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    cfg = PreprocessConfig(recipe="radiograph", cache_dir=str(cache_dir))
    calls = []
    real_prepare = pre.prepare
    monkeypatch.setattr(pre, "prepare", lambda *a, **k: calls.append(a[0].image) or real_prepare(*a, **k))
    first = _load(xray, cfg, 48, 1)
    second = _load(xray, cfg, 48, 1)
    assert len(calls) == 1 and np.array_equal(first, second) and len(_entries(cache_dir)) == 1
    # every parameter that shapes the result is in the key
    changed = PreprocessConfig(recipe="radiograph", ops=[{"name": "clip", "low": 2.0}], cache_dir=str(cache_dir))
    _load(xray, changed, 48, 1)
    _load(xray, cfg, 32, 1)
    _load(xray, cfg, 48, 3)
    assert len(calls) == 4 and len(_entries(cache_dir)) == 4
    key = _key(xray, cfg, 48, 1)
    monkeypatch.setattr(medfit, "__version__", "9.9.9")
    assert _key(xray, cfg, 48, 1) != key
    monkeypatch.setattr(medfit, "__version__", "0.1.0")
    # a changed source file (same path) is a miss
    data = bytearray(open(xray, "rb").read())
    data[-3] ^= 0xFF
    open(xray, "wb").write(bytes(data))
    assert _key(xray, cfg, 48, 1) != key


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip", "wrong_shape"])
def test_corrupt_entries_are_rebuilt(xray, tmp_path, damage):
    cfg = PreprocessConfig(recipe="radiograph", cache_dir=str(tmp_path / "cache"))
    good = _load(xray, cfg, 48, 1)
    entry = PreparedCache(cfg.cache_dir).path(_key(xray, cfg, 48, 1))
    data = entry.read_bytes()
    if damage == "garbage":
        entry.write_bytes(b"not an npz")
    elif damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one flipped byte inside the pixel data: the zip CRC catches it
        broken = bytearray(data)
        broken[len(data) // 2] ^= 0x55
        entry.write_bytes(bytes(broken))
    else:
        np.savez(entry, image=np.zeros((1, 8, 8), np.float32))
    again = _load(xray, cfg, 48, 1)
    assert np.array_equal(again, good)
    with np.load(entry) as npz:  # the entry itself was rewritten
        assert np.array_equal(npz["image"], good)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    cache = PreparedCache(tmp_path / "c")

    def broken_savez(fh, **arrays):
        fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        cache.put("ab" * 32, np.zeros((1, 4, 4), np.float32))
    assert _entries(tmp_path / "c") == []


def _worker(args):
    ref, cache_dir = args
    cfg = PreprocessConfig(recipe="radiograph", cache_dir=cache_dir)
    return [_load(ref, cfg, 64, 1) for _ in range(5)]


def test_concurrent_writers(xray, tmp_path):
    cache_dir = str(tmp_path / "cache")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_worker, [(xray, cache_dir)] * 8)
    flat = [r for rs in results for r in rs]
    assert all(np.array_equal(r, flat[0]) for r in flat)
    files = _entries(tmp_path / "cache")
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary files left behind
    assert np.array_equal(_worker((xray, cache_dir))[0], flat[0])


def test_training_dataset_uses_the_default_cache_folder(shared_data, tmp_path):
    """With preprocess.cache_dir empty, `medfit train`'s dataset caches a recipe in <output_dir>/.cache like `medfit preprocess`."""
    from medfit.config import config_from_dict
    from medfit.data.manifest import Manifest
    from medfit.train.inputs import dataset_for

    files = sorted((shared_data / "chest-xray-pneumonia-224" / "test" / "NORMAL").glob("*.jpeg"))[:3]
    df = pd.DataFrame({"image": [str(f) for f in files], "label": [0] * 3, "patient_id": ["a", "b", "c"],
                       "split": ["train"] * 3})
    cfg = config_from_dict({"output_dir": str(tmp_path / "runs"), "preprocess": {"recipe": "radiograph"},
                            "data": {"image_size": 32, "channels": 1}})
    first = dataset_for(Manifest(df, ["label"], ["NORMAL", "PNEUMONIA"], "binary"), cfg, progress=False)
    cached = [p for p in (tmp_path / "runs" / ".cache").rglob("*") if p.is_file()]
    assert len(cached) >= 3
    again = dataset_for(Manifest(df, ["label"], ["NORMAL", "PNEUMONIA"], "binary"), cfg, progress=False)
    assert torch.equal(first.images, again.images)


@pytest.mark.parametrize("swap", ["other_entry", "rewritten"])
def test_a_well_formed_entry_with_other_values_is_rebuilt(xray, shared_data, tmp_path, swap):
    """Right shape and range, other values (another image's entry moved in, or the array rewritten): the stored key
    and content digest do not match, so the entry is rebuilt instead of used."""
    cfg = PreprocessConfig(recipe="radiograph", cache_dir=str(tmp_path / "cache"))
    good = _load(xray, cfg, 48, 1)
    entry = PreparedCache(cfg.cache_dir).path(_key(xray, cfg, 48, 1))
    other = sorted(glob.glob(str(shared_data / "chest-xray-pneumonia-224" / "test" / "NORMAL" / "*.jpeg")))[0]
    wrong = _load(other, cfg, 48, 1)
    assert wrong.shape == good.shape and not np.allclose(wrong, good)
    if swap == "other_entry":
        shutil.copy(PreparedCache(cfg.cache_dir).path(_key(other, cfg, 48, 1)), entry)
    else:
        with np.load(entry) as npz:
            arrays = dict(npz)
        arrays["image"] = wrong
        np.savez(entry, **arrays)
    assert np.array_equal(_load(xray, cfg, 48, 1), good)
    with np.load(entry) as npz:  # and the entry was rewritten with the right values
        assert np.array_equal(npz["image"], good)
