"""Preprocessing operations and recipes on real images: N4, ROI crop, clipping, CLAHE, unsharp, reformatting."""
import glob

import cv2
import numpy as np
import pytest

from medfit.config import PreprocessConfig
from medfit.errors import ConfigError, DataError
from medfit.io import read_volume
from medfit.io.volume import Volume
from medfit.data.rows import Row
from medfit.preprocess import Recipe, load_prepared, prepare, resolve_ops
from medfit.preprocess.bias import n4_correct
from medfit.preprocess.contrast import clahe, unsharp_mask
from medfit.preprocess.crop import expand_box, mask_box
from medfit.preprocess.intensity import apply_window, clip_quantiles, minmax, resolve_window, zscore
from medfit.preprocess.reformat import central_slice_indices, reformat


@pytest.fixture(scope="module")
def spine(shared_data):
    folder = shared_data / "spine-mri-vb-sagittal"
    image, mask = folder / "VB1_02_AKa3.nii.gz", folder / "VB1_02_AKa3_vbmask.nii.gz"
    return str(image), str(mask), read_volume(str(image)).array[28].astype(np.float32), read_volume(str(mask)).array[28]


def _cv(values):
    return float(values.std() / values.mean())


def test_n4_removes_a_known_bias_field(spine):
    _, _, slice_, labels = spine
    rows, cols = np.mgrid[: slice_.shape[0], : slice_.shape[1]]
    field = np.exp(0.6 * (2 * cols / slice_.shape[1] - 1) + 0.3 * (rows / slice_.shape[0] - 0.5))  # smooth, x1.8 range
    biased = slice_ * field
    bodies = labels > 0
    corrected = n4_correct(biased, shrink=4)
    assert _cv(biased[bodies]) > 1.3 * _cv(slice_[bodies])  # the field really hurts
    assert _cv(corrected[bodies]) < 0.7 * _cv(biased[bodies])  # and N4 takes most of it out
    with pytest.raises(DataError, match="constant image"):
        n4_correct(np.full((32, 32), 7.0, np.float32), source="flat.png")
    nan = slice_.copy()
    nan[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        n4_correct(nan)


def test_roi_crop_around_a_given_vertebra(spine):
    image, mask, slice_, labels = spine
    box = mask_box(labels, 5)
    r0, c0, r1, c1 = expand_box(box, labels.shape, margin=0.1, square=True)
    assert r0 <= box[0] and c0 <= box[1] and r1 >= box[2] and c1 >= box[3]
    side = max(box[2] - box[0], box[3] - box[1])
    assert abs((r1 - r0) - 1.2 * side) <= 2 and abs((c1 - c0) - 1.2 * side) <= 2
    with pytest.raises(DataError, match="no label 42"):
        mask_box(labels, 42, source=mask)
    cfg = PreprocessConfig(ops=[{"name": "crop", "margin": 0.0, "square": False}, {"name": "minmax"}])
    out = prepare(Row(image, 28, mask, 5), Recipe.of(cfg, 64, 1))
    roi = slice_[box[0]:box[2], box[1]:box[3]]
    ref = cv2.resize(minmax(roi), (64, 64), interpolation=cv2.INTER_AREA if min(roi.shape) > 64 else cv2.INTER_LINEAR)
    assert out.shape == (1, 64, 64) and np.allclose(out[0], ref, atol=1e-5)


def test_mri_ovcf_recipe_end_to_end(spine):
    image, mask, _, _ = spine
    cfg = PreprocessConfig(recipe="mri-ovcf")
    names = [op["name"] for op in resolve_ops(cfg.recipe, cfg.ops)]
    assert names == ["n4", "crop", "clip", "minmax"]
    out = prepare(Row(image, 28, mask, 4), Recipe.of(cfg, 48, 3))
    assert out.shape == (3, 48, 48) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0 and np.array_equal(out[0], out[2])


def test_quantile_clip_minmax_zscore_and_constant_images():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 20, (64, 64)).astype(np.float32)
    clipped = clip_quantiles(img)
    lo, hi = np.percentile(img, [5, 95])
    assert clipped.min() == pytest.approx(lo) and clipped.max() == pytest.approx(hi)
    assert np.mean((img >= lo) & (img <= hi)) == pytest.approx(0.9, abs=0.01)
    assert minmax(img).min() == 0.0 and minmax(img).max() == 1.0
    z = zscore(img)
    assert abs(z.mean()) < 1e-4 and z.std() == pytest.approx(1.0, abs=1e-4)
    flat = np.full((16, 16), 3.0, np.float32)
    for fn in (minmax, zscore, clip_quantiles):
        out = fn(flat)
        assert np.all(np.isfinite(out))
    assert np.all(minmax(flat) == 0) and np.all(zscore(flat) == 0)
    with pytest.raises(DataError, match="low < high"):
        clip_quantiles(img, 95, 5)


def test_ct_windows():
    hu = np.array([-1000.0, 40.0, 80.0, 1000.0], np.float32)
    c, w = resolve_window("brain")
    assert (c, w) == (40.0, 80.0)
    assert np.allclose(apply_window(hu, c, w), [0.0, 0.5, 1.0, 1.0])
    assert resolve_window("", 50, 350) == (50.0, 350.0)
    assert resolve_window("file", meta={"window_center": 35, "window_width": 85}) == (35.0, 85.0)
    with pytest.raises(DataError, match="no WindowCenter"):
        resolve_window("file", meta={"source": "x.dcm"})
    with pytest.raises(DataError, match="unknown preset"):
        resolve_window("liver")


def test_clahe_and_unsharp_on_a_radiograph(shared_data):
    path = sorted(glob.glob(str(shared_data / "chest-xray-pneumonia-224" / "test" / "NORMAL" / "*.jpeg")))[0]
    plain = prepare(Row(path), Recipe.of(PreprocessConfig(), 128, 1))[0]
    low = 0.4 + 0.2 * plain  # a washed-out radiograph
    eq = clahe(low, clip=2.5, grid=4)
    assert eq.min() >= 0 and eq.max() <= 1 and eq.std() > 2 * low.std()
    sharp = unsharp_mask(plain, sigma=1.0, amount=2.0)
    lap = lambda x: np.abs(np.diff(x, 2, axis=0)).mean() + np.abs(np.diff(x, 2, axis=1)).mean()  # noqa: E731
    assert lap(sharp) > 1.5 * lap(plain)
    assert np.array_equal(unsharp_mask(plain, amount=0.0), plain)
    out = prepare(Row(path), Recipe.of(PreprocessConfig(recipe="radiograph"), 64, 1))
    assert out.shape == (1, 64, 64) and 0 <= out.min() and out.max() <= 1


def test_reformat_keeps_world_positions():
    # A tilted, anisotropic volume with one bright voxel; after reformatting, that voxel maps to the same world point.
    arr = np.zeros((10, 40, 30), np.float32)
    arr[6, 21, 9] = 100.0
    t = np.radians(15)
    direction = np.array([[0, np.sin(t), np.cos(t)], [0, np.cos(t), -np.sin(t)], [1.0, 0, 0]])
    vol = Volume(arr, spacing=(4.0, 0.5, 0.5), origin=(-7.0, 3.0, 11.0), direction=direction, meta={"frame": "LPS"})
    world = np.asarray(vol.origin) + (np.array([6, 21, 9]) * vol.spacing) @ direction
    sag = reformat(vol, "sagittal", spacing=0.5)
    assert np.allclose(sag.direction, [[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    peak = np.array(np.unravel_index(np.argmax(sag.array), sag.shape))
    found = np.asarray(sag.origin) + (peak * np.asarray(sag.spacing)) @ sag.direction
    assert np.linalg.norm(found - world) < 0.5
    assert central_slice_indices(100, 25) == list(range(38, 63))


def test_ct_sagittal_recipe_on_the_ge_series(shared_data):
    series = str(shared_data / "ct-head-dicom-series-ge" / "series")
    cfg = PreprocessConfig(recipe="ct-sagittal", ops=[])
    vol = read_volume(series)
    sag = reformat(vol, "sagittal", 2.0)
    # sagittal slices: axis 0 runs right-left across the 250 mm field of view
    assert sag.shape[0] == pytest.approx(512 * 0.488 / 2.0, abs=2)
    out = prepare(Row(series), Recipe.of(cfg, 64, 1))
    assert out.shape == (1, 64, 64) and out.max() > 0.9 and (out > 0.5).mean() > 0.01  # bone is visible
    with pytest.raises(DataError, match="reformat needs a 3D source"):
        prepare(Row(str(shared_data / "dicom-samples-nema-wg04" / "693_UNCR.dcm")), Recipe.of(cfg, 32, 1))


def test_ops_config_errors():
    with pytest.raises(ConfigError, match="unknown recipe 'xray'"):
        resolve_ops("xray", [])
    with pytest.raises(ConfigError, match=r"preprocess.ops\[0\]: unknown op 'blur'"):
        resolve_ops("", [{"name": "blur"}])
    with pytest.raises(ConfigError, match=r"preprocess.ops\[1\].tiles: unknown parameter of clahe"):
        resolve_ops("radiograph", [{"name": "minmax"}, {"name": "clahe", "tiles": 8}])
    assert resolve_ops("radiograph", [])[0] == {"name": "clahe", "clip": 2.5, "grid": 4}


def test_resize_pad_preserves_aspect(tmp_path):
    from PIL import Image

    img = np.full((40, 80), 200, np.uint8)
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = load_prepared(Row(str(tmp_path / "wide.png")), Recipe.of(PreprocessConfig(resize="pad"), 32, 1))[0]
    assert np.all(out[:8] == 0) and np.all(out[24:] == 0) and np.allclose(out[8:24], 200 / 255, atol=1e-6)
    out = load_prepared(Row(str(tmp_path / "wide.png")), Recipe.of(PreprocessConfig(), 32, 1))[0]
    assert np.allclose(out, 200 / 255, atol=1e-6)


def test_plain_loading_gives_the_demo_geometry(shared_data):
    """(Loading speed is measured by bench/preprocess.py, not here.)"""
    files = sorted(glob.glob(str(shared_data / "chest-xray-pneumonia-224" / "train" / "*" / "*.jpeg")))[::10][:30]
    cfg = PreprocessConfig()
    recipe = Recipe.of(cfg, 64, 1)
    batch = [load_prepared(Row(f), recipe) for f in files]
    assert all(b.shape == (1, 64, 64) and b.dtype == np.float32 for b in batch)
    rgb = load_prepared(Row(files[0]), Recipe.of(cfg, 224, 3))
    assert rgb.shape == (3, 224, 224) and 0 <= rgb.min() and rgb.max() <= 1
