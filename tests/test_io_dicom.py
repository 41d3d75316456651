"""DICOM reading on real files: the GE head CT series, the NEMA WG04 samples, pydicom's test files, bad input."""
import os

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medfit.errors import DataError
from medfit.io import read_image, read_volume
from medfit.io.dicom import read_dicom_meta
from medfit.io.dicom_series import read_series, resample_stack


@pytest.fixture(scope="module")
def ge_series(shared_data):
    return shared_data / "ct-head-dicom-series-ge" / "series"


@pytest.fixture(scope="module")
def ge_volume(ge_series):
    return read_series(ge_series, irregular="resample")


def test_ge_series_sorted_by_position_not_name(ge_series, tmp_path):
    # Link the slices under shuffled names: the order must come from ImagePositionPatient, not from file names.
    files = sorted(ge_series.glob("*.dcm"))
    rng = np.random.default_rng(0)
    names = {}
    for i, f in zip(rng.permutation(len(files)), files):
        os.symlink(f, tmp_path / f"x{i:02d}.dcm")
        names[f"x{i:02d}.dcm"] = f.name
    vol = read_series(tmp_path, irregular="resample")
    assert vol.meta["num_files"] == 28 and vol.meta["sort_by"] == "position"
    original_order = [names[n] for n in vol.meta["files"]]
    assert original_order == [f"{i:02d}.dcm" for i in range(1, 29)]  # InstanceNumber order = position order here
    instance = [int(pydicom.dcmread(ge_series / n, stop_before_pixels=True).InstanceNumber) for n in original_order]
    assert instance == list(range(1, 29))
    assert np.all(np.diff(vol.meta["positions_along_normal"]) > 0)


def test_ge_series_hu_tilt_and_spacing(ge_series, ge_volume):
    vol = ge_volume
    assert abs(vol.meta["tilt_deg"] - 18.5) < 0.2
    assert vol.meta["spacing_uniform"] is False and vol.meta["resampled"] is True
    gaps = np.array(vol.meta["slice_gaps"])
    assert len(gaps) == 27 and gaps.min() == pytest.approx(1.08, abs=0.02) and gaps.max() == pytest.approx(7.0, abs=0.02)
    # HU: rescaled int16 values, air about -1000 and dense bone above +1000 (SOURCE: -1500..2121)
    assert vol.array.min() == pytest.approx(-1500, abs=1) and vol.array.max() > 1500
    raw = read_image(str(ge_series / "10.dcm"))
    assert np.median(raw[:20, :20]) < -900  # corner of the field of view is air
    # regular grid after resampling: spacing along the normal is uniform and covers the original extent
    extent = vol.meta["positions_along_normal"][-1]
    assert vol.array.shape[1:] == (512, 512)
    assert vol.array.shape[0] == int(np.floor(extent / vol.spacing[0] + 1e-6)) + 1
    with pytest.raises(DataError, match=r"gantry tilt 18\.5 deg and uneven slice spacing"):
        read_series(ge_series, irregular="error")


def test_tilt_correction_aligns_a_structure_running_along_the_normal():
    # A synthetic tilted acquisition: slices stepped along world z, plane tilted by t about the x axis.
    t = np.radians(20.0)
    row_dir, col_dir = np.array([1.0, 0, 0]), np.array([0, np.cos(t), -np.sin(t)])
    normal = np.cross(row_dir, col_dir)
    z = np.array([0.0, 4.0, 8.0, 9.0, 16.0, 23.0])  # uneven steps, like the GE series
    ipp = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)
    a_point = np.array([20.0, 30.0, 0.0])  # the rod passes through this point along the slice normal
    grid_r, grid_c = np.mgrid[:64, :64]
    stack, rows = [], []
    for k in range(len(z)):
        rel = a_point - ipp[k]
        r, c = rel @ col_dir, rel @ row_dir  # where the rod crosses slice k, in pixels (1 mm spacing)
        rows.append(r)
        stack.append(np.exp(-((grid_r - r) ** 2 + (grid_c - c) ** 2) / (2 * 1.5 ** 2)).astype(np.float32))
    stack = np.stack(stack)
    assert np.ptp(rows) > 5  # the rod drifts across the raw slices
    out, gap = resample_stack(stack, ipp, normal, row_dir, col_dir, 1.0, 1.0, 4.0)
    along = (ipp - ipp[0]) @ normal
    assert out.shape[0] == int(np.floor(along[-1] / 4.0)) + 1 and gap == 4.0
    centroids = np.array([[(s * grid_r).sum() / s.sum(), (s * grid_c).sum() / s.sum()] for s in out])
    # after correction the rod sits where it crosses the first slice, in every output slice
    assert np.abs(centroids[:, 0] - rows[0]).max() < 0.1 and np.abs(centroids[:, 1] - 20.0).max() < 0.1


def test_nema_jpeg2000_and_inverted_chest(shared_data):
    nema = shared_data / "dicom-samples-nema-wg04"
    chest = read_image(str(nema / "RG1_J2KI.dcm"))  # JPEG 2000 lossy, MONOCHROME1
    assert chest.shape == (1955, 1841) and chest.dtype == np.float32
    raw = pydicom.dcmread(nema / "RG1_J2KI.dcm").pixel_array.astype(np.float32)
    assert np.allclose(chest + raw, chest[0, 0] + raw[0, 0])  # inverted: a fixed sum everywhere
    h, w = chest.shape
    lungs = np.concatenate([chest[h // 3:h // 2, w // 5:w // 3].ravel(), chest[h // 3:h // 2, 2 * w // 3:4 * w // 5].ravel()])
    mediastinum = chest[h // 3:h // 2, int(0.47 * w):int(0.53 * w)]
    assert lungs.mean() < mediastinum.mean()  # MONOCHROME2 display: air-filled lungs dark, mediastinum bright
    assert read_dicom_meta(nema / "RG1_J2KI.dcm")["photometric"] == "MONOCHROME2"
    leg = read_image(str(nema / "RG3_J2KR.dcm"))  # JPEG 2000 lossless, 10 bit, MONOCHROME1
    raw_leg = pydicom.dcmread(nema / "RG3_J2KR.dcm").pixel_array
    assert leg.shape == (1760, 1760) and np.array_equal(leg, 1023 - raw_leg.astype(np.float32))


def test_nema_uncompressed_ct_mr_us(shared_data):
    nema = shared_data / "dicom-samples-nema-wg04"
    ds = pydicom.dcmread(nema / "693_UNCR.dcm")
    ct = read_image(str(nema / "693_UNCR.dcm"))
    assert np.allclose(ct, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    us = read_image(str(nema / "US1_UNCR.dcm"))
    assert us.shape == (480, 640, 3) and us.dtype == np.uint8
    mr = read_image(str(nema / "MR2_UNCR.dcm"))
    assert mr.shape == (1024, 1024) and np.isfinite(mr).all() and mr.max() > 0


def test_pydicom_test_files_and_file_window():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = read_image(path)
    assert hu.shape == (128, 128)
    assert np.allclose(hu, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert read_dicom_meta(path)["modality"] == "CT"
    meta = read_dicom_meta(get_testdata_file("MR_small.dcm"))
    assert (meta["modality"], meta["window_center"], meta["window_width"]) == ("MR", 600.0, 1600.0)
    vol = read_volume(get_testdata_file("MR_small.dcm"))
    assert vol.shape == (1, 64, 64)


def _series_folder(tmp_path, n=4, uid=None, start=0):
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k in range(n):
        ds = src.copy()
        ds.ImagePositionPatient = [0.0, 0.0, float(start + 2 * k)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = n - k
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        if uid:
            ds.SeriesInstanceUID = uid
        ds.save_as(tmp_path / f"{uid or 's'}{k}.dcm")
    return tmp_path


def test_series_bad_inputs(tmp_path):
    folder = _series_folder(tmp_path)
    vol = read_series(folder)
    assert vol.shape == (4, 128, 128) and vol.spacing[0] == pytest.approx(2.0) and vol.meta["spacing_uniform"]
    (folder / "notes.txt").write_text("not dicom")
    with pytest.raises(DataError, match=r"notes\.txt: not a DICOM file"):
        read_series(folder)
    assert read_series(folder, on_bad_file="skip").shape == (4, 128, 128)
    (folder / "notes.txt").unlink()
    _series_folder(folder, n=2, uid="1.2.3.4", start=50)
    with pytest.raises(DataError, match="2 series mixed in one folder"):
        read_series(folder)


def test_single_file_bad_inputs(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(src)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # a syntax no installed decoder handles
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    data = open(src, "rb").read()
    (tmp_path / "trunc.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.dcm").write_text("hello")
    cases = {"nopix.dcm": "no pixel data", "mpeg.dcm": "cannot decode pixel data in transfer syntax MPEG2",
             "trunc.dcm": "corrupt or truncated", "text.dcm": "not a DICOM file"}
    for name, message in cases.items():
        with pytest.raises(DataError, match=message) as info:
            read_image(str(tmp_path / name))
        assert name in str(info.value)
