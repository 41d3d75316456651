"""NIfTI volumes: the spine MRI with vertebral-body masks, and nibabel's shipped test files."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medfit.errors import DataError
from medfit.io import read_image, read_volume
from medfit.io.nifti import read_mask, read_nifti

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def test_spine_volume_and_mask(shared_data):
    folder = shared_data / "spine-mri-vb-sagittal"
    vol = read_volume(str(folder / "VB1_12_F02.nii.gz"))
    mask = read_mask(folder / "VB1_12_F02_vbmask.nii.gz", like=vol)
    raw = np.asanyarray(nib.load(folder / "VB1_12_F02.nii.gz").dataobj)
    assert vol.shape == (67, 382, 382) and vol.spacing == (1.0, 1.0, 1.0)
    assert np.array_equal(vol.array, np.transpose(raw, (2, 1, 0)))  # axis 0 = the sagittal slice axis
    assert sorted(np.unique(mask.array).tolist()) == list(range(10))  # background + 9 vertebral bodies
    assert np.array_equal(read_image(str(folder / "VB1_12_F02.nii.gz") + "::10"), vol.array[10])
    assert np.array_equal(read_image(str(folder / "VB1_12_F02.nii.gz")), vol.array[33])


def test_nibabel_files_canonical_orientation():
    vol = read_nifti(NIBABEL_DATA / "anatomical.nii")
    img = nib.load(NIBABEL_DATA / "anatomical.nii")
    canon = nib.as_closest_canonical(img)
    assert vol.meta["orientation"] == "RAS"
    assert np.array_equal(vol.array, np.transpose(np.asanyarray(canon.dataobj), (2, 1, 0)))
    assert vol.array.dtype.isnative
    # direction rows are the world directions of array axes (k, j, i) of the canonical affine
    zooms = canon.header.get_zooms()[:3]
    assert np.allclose(vol.direction[0] * zooms[2], canon.affine[:3, 2])
    assert np.allclose(vol.origin, canon.affine[:3, 3])
    std = read_nifti(NIBABEL_DATA / "standard.nii.gz")
    assert std.shape == (7, 5, 4) and std.spacing == (2.0, 3.0, 1.0)  # voxel grid (4, 5, 7), zooms (1, 3, 2)


def test_nifti_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="expected a 3D volume"):
        read_nifti(NIBABEL_DATA / "example4d.nii.gz")
    data = (NIBABEL_DATA / "anatomical.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.nii: unreadable NIfTI"):
        read_nifti(tmp_path / "cut.nii")
    with pytest.raises(DataError, match="not found"):
        read_volume(str(tmp_path / "missing.nii.gz"))
