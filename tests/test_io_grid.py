"""Label masks on their image's grid across world frames: a NIfTI (RAS) mask of a DICOM (LPS) series."""
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medfit.errors import DataError
from medfit.io import read_mask
from medfit.io.dicom_series import read_series


@pytest.fixture
def dicom_image(tmp_path):
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    (tmp_path / "img").mkdir()
    for k in range(4):
        ds = src.copy()
        ds.ImagePositionPatient = [-10.0, 5.0, 2.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(tmp_path / "img" / f"{k}.dcm")
    return read_series(tmp_path / "img")


def _nifti_mask(vol, labels, path, shift=0.0):
    """``labels`` (in the image's axis order) saved as NIfTI with voxel axes (column, row, slice) in RAS, as
    dcm2niix-like converters write a DICOM series."""
    lps_axes = np.stack([vol.direction[2] * vol.spacing[2], vol.direction[1] * vol.spacing[1],
                         vol.direction[0] * vol.spacing[0]], axis=1)
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ lps_axes
    affine[:3, 3] = np.diag([-1.0, -1.0, 1.0]) @ (np.asarray(vol.origin) + [shift, 0, 0])
    nib.save(nib.Nifti1Image(np.transpose(labels, (2, 1, 0)).astype(np.uint8), affine), path)
    return path


def test_nifti_mask_of_a_dicom_series_lands_on_its_voxels(dicom_image, tmp_path):
    labels = np.zeros(dicom_image.shape, np.int32)
    labels[1, 10:20, 30:50] = 1  # an asymmetric block: any flip or transpose would move it
    labels[2, 100:110, 5:9] = 2
    mask = read_mask(_nifti_mask(dicom_image, labels, tmp_path / "m.nii.gz"), like=dicom_image)
    assert mask.array.dtype == np.int32 and np.array_equal(mask.array, labels)
    assert mask.meta["frame"] == "LPS" and mask.origin == dicom_image.origin


def test_nifti_mask_one_voxel_off_is_refused(dicom_image, tmp_path):
    labels = np.zeros(dicom_image.shape, np.int32)
    path = _nifti_mask(dicom_image, labels, tmp_path / "m.nii.gz", shift=dicom_image.spacing[2])
    with pytest.raises(DataError, match=r"m\.nii\.gz: mask origin lies 0\.66 mm from"):
        read_mask(path, like=dicom_image)
