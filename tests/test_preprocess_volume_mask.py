"""A study's mask read for the recipe's volume ops is a label mask on the image's voxel grid (io.read_mask), not a
second image: another voxel size or fractional values are refused in one line naming the mask file."""
import nibabel as nib
import numpy as np
import pytest

from medfit.data.rows import Row
from medfit.errors import DataError
from medfit.preprocess.prepared import volume_stage
from medfit.preprocess.recipe import Recipe

RECIPE = Recipe(ops=({"name": "reformat", "plane": "sagittal"},), image_size=16)


def write(path, array, zooms=(1.0, 1.0, 1.0)):
    affine = np.diag([*zooms, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return str(path)


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    return write(tmp_path / "image.nii.gz", rng.normal(size=(12, 12, 12)).astype(np.float32))


def body(value=1):
    mask = np.zeros((12, 12, 12), np.float32)
    mask[3:9, 4:8, 5:7] = value
    return mask


def test_mask_on_the_image_grid_gives_integer_labels(tmp_path, image):
    mask = write(tmp_path / "mask.nii.gz", body(2))
    item = volume_stage(Row(image, None, mask, None), RECIPE)
    assert item.mask_volume.array.dtype.kind == "i" and set(np.unique(item.mask_volume.array)) == {0, 2}


def test_mask_with_another_voxel_size_is_refused(tmp_path, image):
    mask = write(tmp_path / "mask2mm.nii.gz", body(), zooms=(2.0, 2.0, 2.0))  # same shape, another grid
    with pytest.raises(DataError, match="mask2mm.nii.gz"):
        volume_stage(Row(image, None, mask, None), RECIPE)


def test_fractional_mask_is_refused(tmp_path, image):
    mask = write(tmp_path / "soft.nii.gz", body(0.5))  # a probability map, not labels
    with pytest.raises(DataError, match="soft.nii.gz"):
        volume_stage(Row(image, None, mask, None), RECIPE)
