"""Damaged copies of the real files, built at test time: every reader gives one DataError line naming the file and
the fix, or, where the damage leaves the file legitimately readable, exactly the values of the undamaged reading."""
import gzip
import re
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.data import get_testdata_file

from medfit.data.manifest import manifest_from_medmnist
from medfit.data.studies import read_study
from medfit.errors import DataError
from medfit.io import make_npz_ref, read_image, read_volume
from medfit.io.dicom_series import read_series
from medfit.io.images import open_image, to_array
from medfit.io.medmnist import clear_npz_cache
from medfit.io.nifti import read_mask, read_nifti

# A user-facing message says what to do after a semicolon.
FIX = re.compile(r"; .*\b(re-export|remove|replace|rename|fix|drop|check|set|put|re-download|install|convert|add|"
                 r"read|save|split|give|use|unpack|name|point)\b")
SUBSET = [f"{i:02d}.dcm" for i in range(11, 19)]  # 8 GE slices: 18.5 deg tilt and the 1.08 mm gap among them
MID = "14.dcm"


def refused(call, culprit: str, match: str | None = None, forbid: str | None = None) -> str:
    """Run ``call``: it must raise one DataError line naming ``culprit`` and the fix (and matching ``match``)."""
    try:
        result = call()
    except DataError as exc:
        msg = str(exc)
        assert "\n" not in msg, f"message is not one line: {msg!r}"
        assert culprit in msg, f"message does not name {culprit}: {msg}"
        assert FIX.search(msg), f"message does not say what to do: {msg}"
        if match:
            assert re.search(match, msg), f"{match!r} not in: {msg}"
        if forbid:
            assert not re.search(forbid, msg), f"misleading message: {msg}"
        return msg
    except Exception as exc:  # noqa: BLE001  (the point of the test: no other exception escapes)
        pytest.fail(f"{type(exc).__name__} instead of a DataError: {exc}")
    pytest.fail(f"no error on damaged input naming {culprit}; got {type(result).__name__}")


def refused_or_equal(call, culprit: str, expected: np.ndarray) -> None:
    """Damage that may leave the file readable: a DataError as in ``refused``, or exactly the undamaged values."""
    try:
        result = call()
    except DataError:
        refused(call, culprit)
        return
    array = result.array if hasattr(result, "array") else result
    assert array.shape == expected.shape and np.array_equal(array, expected), "silently different values"


# ---------------------------------------------------------------- DICOM series (the GE head CT)

@pytest.fixture(scope="module")
def ge(shared_data):
    return shared_data / "ct-head-dicom-series-ge" / "series"


@pytest.fixture(scope="module")
def ge_reference(ge, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ge_ref")
    for name in SUBSET:
        (folder / name).symlink_to(ge / name)
    return read_series(folder)


def series_copy(ge, tmp_path, edits=None, raw=None, drop=(), extra=None, every=None) -> Path:
    """A copy of the GE subset: ``edits`` {name: fn(ds)}, ``raw`` {name: fn(bytes)}, ``every`` fn(ds) on all slices,
    ``extra`` {name: bytes} added; untouched slices are links to the shared files."""
    folder = tmp_path / "series"
    folder.mkdir()
    edits, raw = dict(edits or {}), dict(raw or {})
    for name in SUBSET:
        if name in drop:
            continue
        if name in raw:
            (folder / name).write_bytes(raw[name]((ge / name).read_bytes()))
        elif name in edits or every:
            ds = pydicom.dcmread(ge / name)
            if every:
                every(ds)
            if name in edits:
                edits[name](ds)
            ds.save_as(folder / name)
        else:
            (folder / name).symlink_to(ge / name)
    for name, data in (extra or {}).items():
        (folder / name).write_bytes(data)
    return folder


def _delete(*keywords):
    def edit(ds):
        for keyword in keywords:
            delattr(ds, keyword)
    return edit


def _set(**values):
    def edit(ds):
        for keyword, value in values.items():
            setattr(ds, keyword, value)
    return edit


def _replace(old: bytes, new: bytes):
    def damage(data):
        assert old in data
        return data.replace(old, new, 1)
    return damage


def _cut(n):
    return lambda data: data[:n]


def _intercept_1024(ds):
    ds.RescaleIntercept = -1024


SERIES_REFUSED = {
    # PixelSpacing missing or malformed on one slice: once became (1.0, 1.0), tilt correction off by 2626 HU
    "spacing_missing_first": ({"11.dcm": _delete("PixelSpacing")}, "11.dcm", "PixelSpacing"),
    "spacing_missing_mid": ({MID: _delete("PixelSpacing")}, MID, "PixelSpacing"),
    "spacing_one_value": ({"11.dcm": _set(PixelSpacing=[0.4882812])}, "11.dcm", "PixelSpacing"),
    "spacing_differs": ({MID: _set(PixelSpacing=[0.5, 0.5])}, MID, "PixelSpacing"),
    # Rescale: a slice without slope with intercept -1024 was off by +1024 HU
    "slope_deleted_one": ({MID: _delete("RescaleSlope")}, MID, "RescaleSlope"),
    "intercept_deleted_one": ({MID: _delete("RescaleIntercept")}, MID, "RescaleIntercept"),
    "rescale_deleted_one": ({MID: _delete("RescaleSlope", "RescaleIntercept")}, MID, "Rescale"),
    "slope_zero_one": ({MID: _set(RescaleSlope=0)}, MID, "RescaleSlope"),
    "slope_nan_one": ({MID: _set(RescaleSlope="nan")}, MID, "RescaleSlope"),
    # pixel format of one slice
    "pixelrep_flipped_one": ({MID: _set(PixelRepresentation=0)}, MID, "PixelRepresentation"),
    "bitsstored_one": ({MID: _set(BitsStored=12, HighBit=11)}, MID, "BitsStored"),
    "rows_one": ({MID: _set(Rows=256)}, MID, "Rows"),
    "photometric_one": ({MID: _set(PhotometricInterpretation="MONOCHROME1")}, MID, "PhotometricInterpretation"),
    "modality_one": ({MID: _set(Modality="MR")}, MID, "Modality"),
    "frame_of_reference_one": ({MID: _set(FrameOfReferenceUID=pydicom.uid.generate_uid())}, MID, "FrameOfReference"),
    # geometry of one slice: once dropped the series to InstanceNumber order, ignoring tilt and irregular: error
    "orientation_changed_one": ({MID: _set(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])}, MID, "ImageOrientation"),
    "orientation_missing_one": ({MID: _delete("ImageOrientationPatient")}, MID, "ImageOrientation"),
    "orientation_five_values": ({MID: _set(ImageOrientationPatient=[1, 0, 0, 0, 1])}, MID, "ImageOrientation"),
    "position_missing_one": ({MID: _delete("ImagePositionPatient")}, MID, "ImagePositionPatient"),
    "position_missing_first": ({"11.dcm": _delete("ImagePositionPatient")}, "11.dcm", "ImagePositionPatient"),
    "position_two_values": ({MID: _set(ImagePositionPatient=[-125.0, -123.5])}, MID, "ImagePositionPatient"),
    "series_uid_garbled": ({MID: _set(SeriesInstanceUID="1.2.826.0.1.x3680043")}, MID, "SeriesInstanceUID"),
    "series_uid_other": ({MID: _set(SeriesInstanceUID=pydicom.uid.generate_uid())}, MID, "series"),
}


@pytest.mark.parametrize("case", sorted(SERIES_REFUSED))
def test_series_slice_attribute_damage_is_refused(ge, tmp_path, case):
    edits, culprit, match = SERIES_REFUSED[case]
    folder = series_copy(ge, tmp_path, edits=edits)
    refused(lambda: read_series(folder), culprit, match)


SERIES_BYTES = {
    "spacing_garbled_bytes": ("11.dcm", _replace(b"0.4882812\\0.4882812", b"0.48828x2\\0.4882812")),
    "truncated_0": (MID, _cut(0)),
    "truncated_132": (MID, _cut(132)),
    "truncated_500": (MID, _cut(500)),
    "truncated_1000": (MID, _cut(1000)),
    "truncated_1930": (MID, _cut(1930)),
    "truncated_2000": (MID, _cut(2000)),
    "truncated_100000": (MID, _cut(100000)),
    "truncated_last_byte": (MID, lambda data: data[:-1]),
}


@pytest.mark.parametrize("case", sorted(SERIES_BYTES))
def test_series_damaged_bytes_name_the_file(ge, tmp_path, case):
    name, damage = SERIES_BYTES[case]
    folder = series_copy(ge, tmp_path, raw={name: damage})
    msg = refused(lambda: read_series(folder), name, forbid=r"series mixed|not an image")
    if case.startswith("truncated") and case != "truncated_0":
        assert "truncated" in msg


@pytest.mark.parametrize("seed", range(6))
def test_series_random_header_bytes(ge, ge_reference, tmp_path, seed):
    rng = np.random.default_rng(seed)

    def damage(data):
        data = bytearray(data)
        for pos in rng.integers(132, 1990, size=6):
            data[pos] = rng.integers(0, 256)
        return bytes(data)

    folder = series_copy(ge, tmp_path, raw={MID: damage})
    try:
        read_series(folder)
    except DataError as exc:
        assert "series mixed" not in str(exc) or MID in str(exc)
    refused_or_equal(lambda: read_series(folder), MID, ge_reference.array)


def test_series_rescale_slope_missing_on_every_slice(ge, tmp_path):
    folder = series_copy(ge, tmp_path, every=_delete("RescaleSlope"))
    refused(lambda: read_series(folder), "RescaleSlope")


def test_series_pixel_representation_flipped_on_every_slice(ge, tmp_path):
    # 1 -> 0 on all slices: the padding -1500 became 64036 "HU" and air 64536
    folder = series_copy(ge, tmp_path, every=_set(PixelRepresentation=0))
    refused(lambda: read_series(folder), ".dcm", "PixelRepresentation")


def test_series_bits_stored_narrowed_on_every_slice(ge, ge_reference, tmp_path):
    # 16 -> 11 on all slices: the padding -1500 and bone above 1023 HU would wrap around
    folder = series_copy(ge, tmp_path, every=_set(BitsStored=11, HighBit=10))
    refused(lambda: read_series(folder), ".dcm", "BitsStored")
    # 16 -> 12: every value of these slices fits in 12 signed bits (-1500..<2048), so the values are the same
    (tmp_path / "twelve").mkdir()
    twelve = series_copy(ge, tmp_path / "twelve", every=_set(BitsStored=12, HighBit=11))
    assert np.array_equal(read_series(twelve).array, ge_reference.array)


def test_series_pixel_spacing_missing_on_every_slice(ge, tmp_path):
    folder = series_copy(ge, tmp_path, every=_delete("PixelSpacing"))
    refused(lambda: read_series(folder), str(folder), "PixelSpacing")


def test_series_intercept_1024_and_one_slope_deleted(ge, tmp_path):
    folder = series_copy(ge, tmp_path, every=_intercept_1024, edits={MID: _delete("RescaleSlope")})
    refused(lambda: read_series(folder), MID, "RescaleSlope")


def test_series_without_rescale_on_every_slice_reads_stored_values_and_says_so(ge, ge_reference, tmp_path, caplog):
    # The Modality LUT module absent: stored values are the values (slope 1, intercept 0 here); recorded and logged.
    folder = series_copy(ge, tmp_path, every=_delete("RescaleSlope", "RescaleIntercept"))
    vol = read_series(folder)
    assert np.array_equal(vol.array, ge_reference.array)
    assert any("Rescale" in note for note in vol.meta["fallbacks"])
    assert "Rescale" in caplog.text


def test_series_without_positions_on_every_slice_uses_instance_order_and_says_so(ge, tmp_path, caplog):
    # Slices 11-14 share SliceThickness 4 mm: ordered by InstanceNumber, spaced by SliceThickness, both recorded.
    four = [name for name in SUBSET if name > "14.dcm"]
    folder = series_copy(ge, tmp_path, every=_delete("ImagePositionPatient"), drop=four)
    vol = read_series(folder)
    raw = np.stack([read_image(str(ge / name)) for name in SUBSET[:4]])  # InstanceNumber order = name order here
    assert vol.meta["sort_by"] == "instance_number" and np.array_equal(vol.array, raw)
    assert vol.spacing == (4.0, 0.4882812, 0.4882812)
    assert any("SliceThickness" in note for note in vol.meta["fallbacks"]) and "InstanceNumber" in caplog.text
    # with 15-18 (SliceThickness 7 mm) the spacing is unknown without positions: refused, naming the first 7 mm slice
    (tmp_path / "all").mkdir()
    every = series_copy(ge, tmp_path / "all", every=_delete("ImagePositionPatient"))
    refused(lambda: read_series(every), "15.dcm", "SliceThickness")


def test_series_foreign_slice_from_another_ct(ge, shared_data, tmp_path):
    # A NEMA CT slice with the GE series UID and orientation spoofed: once resampled as "tilt 83 degrees".
    ds = pydicom.dcmread(shared_data / "dicom-samples-nema-wg04" / "693_UNCR.dcm")
    ref = pydicom.dcmread(ge / MID, stop_before_pixels=True)
    ds.SeriesInstanceUID, ds.ImageOrientationPatient = ref.SeriesInstanceUID, ref.ImageOrientationPatient
    folder = series_copy(ge, tmp_path)
    ds.save_as(folder / "zz_foreign.dcm")
    refused(lambda: read_series(folder), "zz_foreign.dcm")


def test_series_foreign_slice_with_every_attribute_spoofed(ge, tmp_path):
    # The same scanner's slice moved 40 mm sideways: only its position betrays it (an implausible tilt).
    ds = pydicom.dcmread(ge / MID)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x + 40.0, y, z + 2.0]
    folder = series_copy(ge, tmp_path)
    ds.save_as(folder / "zz_foreign.dcm")
    refused(lambda: read_series(folder), "zz_foreign.dcm", "ImagePositionPatient")
    refused(lambda: read_series(folder, irregular="error"), "zz_foreign.dcm")


def test_series_duplicated_slice_names_both_files(ge, tmp_path):
    folder = series_copy(ge, tmp_path)
    shutil.copy(ge / MID, folder / "14_copy.dcm")
    msg = refused(lambda: read_series(folder), MID, "same position")
    assert "14_copy.dcm" in msg


@pytest.mark.parametrize("name,data", [("notes.txt", b"not dicom"), ("empty.dcm", b"")])
def test_series_foreign_files_are_named(ge, tmp_path, name, data):
    folder = series_copy(ge, tmp_path, extra={name: data})
    refused(lambda: read_series(folder), name)


def test_series_slice_with_wrong_suffix_reads_the_same(ge, ge_reference, tmp_path):
    folder = series_copy(ge, tmp_path, drop=[MID])
    (folder / "14.png").symlink_to(ge / MID)
    assert np.array_equal(read_series(folder).array, ge_reference.array)


def test_series_missing_instance_number_is_harmless_with_positions(ge, ge_reference, tmp_path):
    folder = series_copy(ge, tmp_path, edits={MID: _delete("InstanceNumber")})
    assert np.array_equal(read_series(folder).array, ge_reference.array)


def test_empty_series_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    refused(lambda: read_series(tmp_path / "empty"), "empty", "no DICOM files")


# ---------------------------------------------------------------- single DICOM files (NEMA)

@pytest.fixture(scope="module")
def nema(shared_data):
    return shared_data / "dicom-samples-nema-wg04"


@pytest.mark.parametrize("cut", [0, 128, 132, 400, 1200, 100000, -1])
def test_nema_ct_truncated(nema, tmp_path, cut):
    data = (nema / "693_UNCR.dcm").read_bytes()
    path = tmp_path / "ct.dcm"
    path.write_bytes(data[:cut])
    refused(lambda: read_image(str(path)), "ct.dcm", forbid="not an image")


def test_nema_jpeg2000_truncated(nema, tmp_path):
    data = (nema / "RG1_J2KI.dcm").read_bytes()
    path = tmp_path / "cr.dcm"
    path.write_bytes(data[: len(data) // 2])
    refused(lambda: read_image(str(path)), "cr.dcm", "truncated")


def test_nema_garbled_transfer_syntax_is_not_blamed_on_decoders(nema, tmp_path):
    path = tmp_path / "ct.dcm"
    damage = _replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.7\x00")
    path.write_bytes(damage((nema / "693_UNCR.dcm").read_bytes()))
    refused(lambda: read_image(str(path)), "ct.dcm", "transfer syntax", forbid="install")


NEMA_EDITS = {
    "pixelrep_flipped": (_set(PixelRepresentation=0), "PixelRepresentation"),
    "rows_halved": (_set(Rows=256), "Rows|pixel data"),
    "slope_deleted": (_delete("RescaleSlope"), "RescaleSlope"),
    "intercept_deleted": (_delete("RescaleIntercept"), "RescaleIntercept"),
    "slope_nan": (_set(RescaleSlope="nan"), "RescaleSlope"),
    "no_photometric": (_delete("PhotometricInterpretation"), "PhotometricInterpretation"),
    # without the padding value to contradict it, the flip shows in the bits above BitsStored (-2000 -> 13360 "HU")
    "pixelrep_flipped_no_padding": (lambda ds: _set(PixelRepresentation=0)(_delete("PixelPaddingValue")(ds) or ds),
                                    "BitsStored"),
    "bitsstored_10": (_set(BitsStored=10, HighBit=9), "BitsStored"),
}


@pytest.mark.parametrize("case", sorted(NEMA_EDITS))
def test_nema_ct_header_damage(nema, tmp_path, case):
    edit, match = NEMA_EDITS[case]
    ds = pydicom.dcmread(nema / "693_UNCR.dcm")
    edit(ds)
    ds.save_as(tmp_path / "ct.dcm")
    refused(lambda: read_image(str(tmp_path / "ct.dcm")), "ct.dcm", match)


@pytest.mark.parametrize("spacing", [None, [0.478516], "0.47x\\0.47"])
def test_single_file_volume_needs_a_pixel_spacing(nema, tmp_path, spacing):
    ds = pydicom.dcmread(nema / "693_UNCR.dcm")
    if spacing is None:
        del ds.PixelSpacing
        ds.save_as(tmp_path / "ct.dcm")
    elif isinstance(spacing, list):
        ds.PixelSpacing = spacing
        ds.save_as(tmp_path / "ct.dcm")
    else:
        ds.save_as(tmp_path / "ct.dcm")
        data = (tmp_path / "ct.dcm").read_bytes()
        garble = _replace(b"0.478516\\0.478516", b"0.47x\\0.47       ")  # same length, so the file stays parseable
        (tmp_path / "ct.dcm").write_bytes(garble(data))
    refused(lambda: read_volume(str(tmp_path / "ct.dcm")), "ct.dcm", "PixelSpacing")


@pytest.mark.parametrize("seed", range(6))
def test_nema_ct_random_header_bytes(nema, tmp_path, seed):
    data = bytearray((nema / "693_UNCR.dcm").read_bytes())
    expected = read_image(str(nema / "693_UNCR.dcm"))
    rng = np.random.default_rng(100 + seed)
    for pos in rng.integers(132, 1500, size=6):
        data[pos] = rng.integers(0, 256)
    (tmp_path / "ct.dcm").write_bytes(bytes(data))
    refused_or_equal(lambda: read_image(str(tmp_path / "ct.dcm")), "ct.dcm", expected)


def test_dicom_and_png_with_swapped_suffixes_say_rename(nema, tmp_path):
    (tmp_path / "ct.png").write_bytes((nema / "693_UNCR.dcm").read_bytes())
    refused(lambda: read_image(str(tmp_path / "ct.png")), "ct.png", r"DICOM file.*rename it to \.dcm")
    gray = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)
    Image.fromarray(gray).save(tmp_path / "g.png")
    (tmp_path / "g.dcm").write_bytes((tmp_path / "g.png").read_bytes())
    refused(lambda: read_image(str(tmp_path / "g.dcm")), "g.dcm", r"PNG image.*rename it to \.png")


# ---------------------------------------------------------------- DICOM label masks beside a DICOM series

def _small_series(folder: Path, values, shift=0.0):
    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k, value in enumerate(values):
        ds = src.copy()
        ds.ImagePositionPatient = [shift, 0.0, 2.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        if value is not None:
            ds.PixelData = np.full((128, 128), value, np.int16).tobytes()
        ds.save_as(folder / f"{k}.dcm")
    return folder


def test_dicom_mask_series_checked_against_its_image(tmp_path):
    image = read_series(_small_series(tmp_path / "img", [None] * 4))
    mask = read_mask(_small_series(tmp_path / "mask", [0, 1, 2, 0]), like=image)
    assert mask.array.dtype == np.int32 and [int(s.max()) for s in mask.array] == [0, 1, 2, 0]
    refused(lambda: read_mask(_small_series(tmp_path / "moved", [0, 1, 2, 0], shift=5.0), like=image), "moved",
            "origin")


# ---------------------------------------------------------------- NIfTI volumes and masks (spine MRI)

@pytest.fixture(scope="module")
def spine(shared_data):
    return shared_data / "spine-mri-vb-sagittal"


@pytest.fixture(scope="module")
def small_exam(spine, tmp_path_factory):
    """A crop of exam 12 (image and mask) saved as .nii, to keep the damage cases fast."""
    folder = tmp_path_factory.mktemp("spine")
    img, mask = nib.load(spine / "VB1_12_F02.nii.gz"), nib.load(spine / "VB1_12_F02_vbmask.nii.gz")
    crop = (slice(150, 214), slice(100, 164), slice(20, 44))
    for source, name in ((img, "img.nii"), (mask, "mask.nii")):
        data = np.asanyarray(source.dataobj)[crop]
        nib.save(nib.Nifti1Image(data, source.affine, source.header), folder / name)
    image = read_nifti(folder / "img.nii")
    labels = read_mask(folder / "mask.nii", like=image)
    assert len(np.unique(labels.array)) > 2
    return folder, image, labels


@pytest.mark.parametrize("cut", [0, 100, 1000, 0.5])
def test_spine_nifti_gz_truncated(spine, tmp_path, cut):
    data = (spine / "VB1_12_F02.nii.gz").read_bytes()
    path = tmp_path / "vol.nii.gz"
    path.write_bytes(data[: int(cut * len(data)) if cut < 1 else cut])
    refused(lambda: read_volume(str(path)), "vol.nii.gz")


@pytest.mark.parametrize("cut", [0, 348, 353, 5000, -1])
def test_nifti_truncated(small_exam, tmp_path, cut):
    folder, _, _ = small_exam
    data = (folder / "img.nii").read_bytes()
    (tmp_path / "vol.nii").write_bytes(data[:cut])
    refused(lambda: read_nifti(tmp_path / "vol.nii"), "vol.nii")


def test_nifti_compression_and_suffix_disagree(small_exam, tmp_path):
    folder, _, _ = small_exam
    data = (folder / "img.nii").read_bytes()
    (tmp_path / "plain.nii.gz").write_bytes(data)
    refused(lambda: read_nifti(tmp_path / "plain.nii.gz"), "plain.nii.gz", "rename")
    (tmp_path / "packed.nii").write_bytes(gzip.compress(data, compresslevel=1))
    refused(lambda: read_nifti(tmp_path / "packed.nii"), "packed.nii", "rename")


def _header_damage(folder, tmp_path, fn, name="img.nii"):
    img = nib.load(folder / name)
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header.copy())
    fn(img)
    nib.save(img, tmp_path / name)
    return tmp_path / name


def _raw_header(folder, tmp_path, offset, fmt, value, name="img.nii"):
    data = bytearray((folder / name).read_bytes())
    data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    (tmp_path / name).write_bytes(bytes(data))
    return tmp_path / name


def test_nifti_vox_offset_inside_the_header(small_exam, tmp_path):
    path = _raw_header(small_exam[0], tmp_path, 108, "<f", 348.0)
    refused(lambda: read_nifti(path), "img.nii")


@pytest.mark.parametrize("value", [9.6e24, 0.0, float("nan")])
def test_nifti_affine_garbage(small_exam, tmp_path, value):
    path = _raw_header(small_exam[0], tmp_path, 280, "<f", value)  # srow_x[0]
    refused(lambda: read_nifti(path), "img.nii", "affine|voxel size")


@pytest.mark.parametrize("where", ["one", "all", "inf"])
def test_nifti_non_finite_voxels(small_exam, tmp_path, where):
    folder, _, _ = small_exam
    img = nib.load(folder / "img.nii")
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if where == "one":
        data[3, 4, 5] = np.nan
    elif where == "all":
        data[:] = np.nan
    else:
        data[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine), tmp_path / "f.nii")
    refused(lambda: read_nifti(tmp_path / "f.nii"), "f.nii", "NaN|infinite")
    refused(lambda: read_study(str(tmp_path / "f.nii")), "f.nii", "NaN|infinite")


def _mask_variant(folder, tmp_path, data_fn=None, affine_fn=None, dtype=None, slope=None):
    mask = nib.load(folder / "mask.nii")
    data = np.asanyarray(mask.dataobj)
    data = data_fn(data) if data_fn else data
    affine = affine_fn(mask.affine.copy()) if affine_fn else mask.affine
    img = nib.Nifti1Image(data.astype(dtype or data.dtype), affine)
    if slope is not None:
        img.header.set_slope_inter(slope, 0)
    nib.save(img, tmp_path / "m.nii")
    return tmp_path / "m.nii"


def _flip_column(affine, axis, n):
    out = affine.copy()
    out[:3, axis] = -affine[:3, axis]
    return out


def _shift(affine, mm):
    out = affine.copy()
    out[:3, 3] += mm
    return out


MASKS_REFUSED = {
    # the affine's first axis flipped, the data not: once silently mirrored
    "flipped_affine": dict(affine_fn=lambda a: _flip_column(a, 0, 64)),
    "shifted_3mm": dict(affine_fn=lambda a: _shift(a, [3.0, 0, 0])),
    "spacing_1_2": dict(affine_fn=lambda a: a @ np.diag([1.2, 1.0, 1.0, 1.0])),
    "labels_times_half": dict(slope=0.5),
    "float_half_labels": dict(data_fn=lambda d: d * 0.5, dtype=np.float32),
    "nan_label": dict(data_fn=lambda d: np.where(np.arange(d.size).reshape(d.shape) == 7, np.nan, d), dtype=np.float32),
    "negative_label": dict(data_fn=lambda d: np.where(d == 1, -1, d.astype(np.int16))),
    "other_shape": dict(data_fn=lambda d: d[:, :, :-1]),
}


@pytest.mark.parametrize("case", sorted(MASKS_REFUSED))
def test_mask_damage_is_refused(small_exam, tmp_path, case):
    folder, image, _ = small_exam
    path = _mask_variant(folder, tmp_path, **MASKS_REFUSED[case])
    refused(lambda: read_mask(path, like=image), "m.nii")


MASKS_EQUAL = {
    "flipped_data_and_affine": dict(data_fn=lambda d: d[::-1], affine_fn=lambda a: a @ _flip_matrix(64)),
    "axes_permuted": dict(data_fn=lambda d: np.transpose(d, (1, 0, 2)), affine_fn=lambda a: a[:, [1, 0, 2, 3]]),
    "float_exact_labels": dict(dtype=np.float32),
    "origin_off_by_0_01mm": dict(affine_fn=lambda a: _shift(a, [0.01, 0, 0])),
}


def _flip_matrix(n):
    m = np.eye(4)
    m[0, 0], m[0, 3] = -1.0, n - 1.0
    return m


@pytest.mark.parametrize("case", sorted(MASKS_EQUAL))
def test_mask_stored_differently_reads_the_same(small_exam, tmp_path, case):
    folder, image, labels = small_exam
    path = _mask_variant(folder, tmp_path, **MASKS_EQUAL[case])
    mask = read_mask(path, like=image)
    assert np.array_equal(mask.array, labels.array) and mask.array.dtype == np.int32


def test_mask_of_another_exam(spine, small_exam):
    _, image, _ = small_exam
    refused(lambda: read_mask(spine / "VB1_02_AKa3_vbmask.nii.gz", like=image), "VB1_02_AKa3_vbmask.nii.gz")


# ---------------------------------------------------------------- MedMNIST npz

@pytest.fixture(scope="module")
def pneumonia(shared_data):
    return shared_data / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz"


@pytest.fixture(scope="module")
def adrenal(shared_data):
    return shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"


@pytest.mark.parametrize("cut", [0, 10, 0.5, -30, -1])
def test_npz_truncated(adrenal, tmp_path, cut):
    clear_npz_cache()
    data = adrenal.read_bytes()
    path = tmp_path / "a.npz"
    path.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    refused(lambda: manifest_from_medmnist(path), "a.npz")
    refused(lambda: read_image(make_npz_ref(path, "train_images", 0)), "a.npz")


def test_npz_member_data_corrupt(pneumonia, tmp_path):
    clear_npz_cache()
    data = bytearray(pneumonia.read_bytes())
    data[1000:1010] = b"\xff" * 10  # inside the deflated train_images member
    path = tmp_path / "p.npz"
    path.write_bytes(bytes(data))
    refused(lambda: manifest_from_medmnist(path), "p.npz")  # the images' header is in the corrupt stream
    refused(lambda: read_image(make_npz_ref(path, "train_images", 0)), "p.npz")


def _npz_variant(src, path, keep=40, **changes):
    """A copy of the first ``keep`` entries of every array, with ``changes`` {key: fn(array)} applied."""
    with np.load(src) as npz:
        arrays = {key: npz[key][:keep] for key in npz.files}
    for key, fn in changes.items():
        arrays[key] = fn(arrays[key])
    np.savez(path, **arrays)
    return path


def _nan_entry(images, everywhere=True):
    out = images.astype(np.float32)
    if everywhere:
        out[3] = np.nan
    else:
        out[3, 10, 10, 10] = np.nan
    return out


@pytest.mark.parametrize("everywhere", [True, False])
def test_npz_nan_volume(adrenal, tmp_path, everywhere):
    clear_npz_cache()
    path = _npz_variant(adrenal, tmp_path / "a.npz", train_images=lambda a: _nan_entry(a, everywhere))
    ref = make_npz_ref(path, "train_images", 3)
    refused(lambda: read_study(ref), "a.npz", "NaN")
    refused(lambda: read_image(ref), "a.npz", "NaN")
    assert read_study(make_npz_ref(path, "train_images", 2)).shape == (28, 28, 28)


NPZ_LABELS = {
    "labels_short": dict(train_labels=lambda a: a[:-1]),
    "labels_nan": dict(train_labels=lambda a: np.where(np.arange(len(a))[:, None] == 5, np.nan, a.astype(float))),
    "labels_fractional": dict(train_labels=lambda a: a * 0.5),
    "labels_negative": dict(train_labels=lambda a: a.astype(np.int64) - 1),
}


@pytest.mark.parametrize("case", sorted(NPZ_LABELS))
def test_npz_label_damage(adrenal, tmp_path, case):
    path = _npz_variant(adrenal, tmp_path / "a.npz", **NPZ_LABELS[case])
    refused(lambda: manifest_from_medmnist(path), "a.npz", "train_labels")


def test_npz_that_is_not_a_zip_or_holds_objects(pneumonia, tmp_path):
    clear_npz_cache()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.npz").write_bytes((tmp_path / "x.png").read_bytes())
    refused(lambda: manifest_from_medmnist(tmp_path / "x.npz"), "x.npz")
    np.savez(tmp_path / "o.npz", train_images=np.array([object()] * 3), train_labels=np.zeros((3, 1)))
    refused(lambda: manifest_from_medmnist(tmp_path / "o.npz") and read_image(make_npz_ref(tmp_path / "o.npz",
                                                                                          "train_images", 0)), "o.npz")


# ---------------------------------------------------------------- plain images (chest X-ray JPEG, PNG)

@pytest.fixture(scope="module")
def xray(shared_data):
    return next((shared_data / "chest-xray-pneumonia-224" / "train" / "NORMAL").glob("*.jpeg"))


@pytest.mark.parametrize("cut", [0, 2, 20, 200, 1000, 0.5, -100, -2, -1])
def test_jpeg_truncated(xray, tmp_path, cut):
    data = xray.read_bytes()
    path = tmp_path / "x.jpeg"
    path.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    refused(lambda: read_image(str(path)), "x.jpeg")


def test_truncated_jpeg_through_the_draft_path_is_refused(xray, tmp_path):
    # preprocess reads JPEGs with draft() for speed; Pillow must still refuse the truncated data (no half-grey image)
    data = xray.read_bytes()
    (tmp_path / "x.jpeg").write_bytes(data[: len(data) // 2])

    def read():
        with open_image(tmp_path / "x.jpeg") as img:
            img.draft("L", (64, 64))
            return to_array(img, tmp_path / "x.jpeg")

    refused(read, "x.jpeg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("cut", [8, 40, 100, 0.5])
def test_png_truncated(xray, tmp_path, cut):
    Image.open(xray).save(tmp_path / "ref.png")
    data = (tmp_path / "ref.png").read_bytes()
    (tmp_path / "x.png").write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    refused(lambda: read_image(str(tmp_path / "x.png")), "x.png")


def test_png_without_its_end_chunk_and_png_named_jpeg_read_the_same(xray, tmp_path):
    expected = read_image(str(xray))
    Image.open(xray).save(tmp_path / "ref.png")
    data = (tmp_path / "ref.png").read_bytes()
    (tmp_path / "noend.png").write_bytes(data[:-12])  # IEND gone, all pixel data present
    assert np.array_equal(read_image(str(tmp_path / "noend.png")), expected)
    (tmp_path / "png.jpeg").write_bytes(data)
    assert np.array_equal(read_image(str(tmp_path / "png.jpeg")), expected)


def test_png_decompression_bomb_header(tmp_path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)  # 10^10 pixels claimed, 100 bytes given
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    refused(lambda: read_image(str(tmp_path / "bomb.png")), "bomb.png", "implausible size")


def test_float_tiff_with_nan(tmp_path):
    data = np.ones((16, 16), np.float32)
    data[2, 3] = np.nan
    Image.fromarray(data, mode="F").save(tmp_path / "f.tif")
    refused(lambda: read_image(str(tmp_path / "f.tif")), "f.tif", "NaN")


def test_zip_of_a_jpeg_is_not_an_image(xray, tmp_path):
    with zipfile.ZipFile(tmp_path / "x.jpeg", "w") as z:
        z.write(xray, "inner.jpeg")
    refused(lambda: read_image(str(tmp_path / "x.jpeg")), "x.jpeg")
