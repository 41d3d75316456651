"""Plain images and MedMNIST references through medfit.io.read_image."""

import numpy as np
import pytest
from PIL import Image

from medfit.errors import DataError
from medfit.io import make_npz_ref, read_image
from medfit.io.medmnist import clear_npz_cache


def test_jpeg_and_png(shared_data, tmp_path):
    jpeg = next((shared_data / "chest-xray-pneumonia-224" / "train" / "NORMAL").glob("*.jpeg"))
    rgb = read_image(str(jpeg))
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, np.asarray(Image.open(jpeg).convert("RGB")))
    gray = (np.arange(30 * 20) % 251).astype(np.uint8).reshape(30, 20)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert np.array_equal(read_image(str(tmp_path / "g.png")), gray)


def test_bad_image_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty.png: not a readable image"):
        read_image(str(tmp_path / "empty.png"))
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "ok.jpg", quality=90)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"cut.jpg: .*corrupt or truncated"):
        read_image(str(tmp_path / "cut.jpg"))
    with pytest.raises(DataError, match="nope.png: image file not found"):
        read_image(str(tmp_path / "nope.png"))


def test_medmnist_refs_decode_the_archive_once_and_are_exact(shared_data, monkeypatch):
    npz_path = shared_data / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz"
    expected = np.load(npz_path)["train_images"]
    clear_npz_cache()
    opened = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: opened.append(a[0]) or real_load(*a, **k))
    images = [read_image(make_npz_ref(npz_path, "train_images", i)) for i in range(len(expected))]
    monkeypatch.undo()
    assert len(images) == 4708 and np.array_equal(np.stack(images), expected)
    assert len(opened) == 1  # the npz is decoded once per process, not once per entry (speed: bench/preprocess.py)
    vol_ref = make_npz_ref(shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz", "train_images", 3)
    assert read_image(vol_ref).shape == (28, 28)  # 3D entries give their middle slice
    assert read_image(vol_ref, slice_index=0).shape == (28, 28)
    with pytest.raises(DataError, match="out of range"):
        read_image(make_npz_ref(npz_path, "train_images", 99999))
    with pytest.raises(DataError, match="no array 'nope_images'"):
        read_image(make_npz_ref(npz_path, "nope_images", 0))
