"""N4 on the whole volume (op n4_3d, recipe mri-ovcf-3d): one 3D bias field, removed before the slice is cut."""
import numpy as np
import pytest

from medfit.errors import DataError
from medfit.io import read_volume
from medfit.io.volume import Volume
from medfit.preprocess import resolve_ops
from medfit.preprocess.recipes import _N4_VOLUME_MEMO, Item, run_ops


def _cv(values):
    return float(values.std() / values.mean())


def _slice_spread(volume, reference, bodies):
    """SD over slices of log(mean body intensity / the unbiased one): how much the slices disagree in brightness."""
    keep = bodies.reshape(len(bodies), -1).sum(1) >= 500
    ratios = [volume[i][bodies[i]].mean() / reference[i][bodies[i]].mean() for i in np.flatnonzero(keep)]
    return float(np.std(np.log(ratios)))


def test_n4_3d_removes_a_field_that_varies_across_slices(shared_data):
    folder = shared_data / "spine-mri-vb-sagittal"
    image = read_volume(str(folder / "VB1_02_AKa3.nii.gz")).array[:, 60:300, 60:300].astype(np.float32)
    labels = read_volume(str(folder / "VB1_02_AKa3_vbmask.nii.gz")).array[:, 60:300, 60:300]
    z, _, c = np.mgrid[: image.shape[0], : image.shape[1], : image.shape[2]]
    field = np.exp(0.8 * (z / image.shape[0] - 0.5) + 0.4 * (c / image.shape[2] - 0.5))  # x2.2 across the slices
    biased = image * field
    bodies = labels > 0
    ops = resolve_ops("mri-ovcf-3d", [])
    assert [o["name"] for o in ops] == ["n4_3d", "crop", "clip", "minmax"]
    ops = [{**ops[0], "shrink": 8, "iterations": 20, "levels": 3}]
    _N4_VOLUME_MEMO.clear()
    item = Item(array=np.zeros((1, 1), np.float32), volume=Volume(biased), mask_volume=Volume(labels), roi_label=3,
                meta={"source": "spine"})
    out = run_ops(item, ops, slice_index=28)  # the field is fitted on the volume, then slice 28 is cut
    assert out.array.shape == (240, 240) and out.mask.shape == (240, 240) and out.meta["slice_index"] == 28
    (corrected,) = _N4_VOLUME_MEMO.values()
    np.testing.assert_array_equal(out.array, corrected[28])
    # measured: CV in the bodies 0.211 unbiased, 0.288 biased, 0.224 corrected; slice spread 0.184 -> 0.122
    assert _cv(biased[bodies]) > 1.2 * _cv(image[bodies])
    assert _cv(corrected[bodies]) < 0.85 * _cv(biased[bodies])
    assert _slice_spread(corrected, image, bodies) < 0.75 * _slice_spread(biased, image, bodies)
    again = run_ops(Item(array=np.zeros((1, 1), np.float32), volume=Volume(biased), meta={"source": "spine"}), ops, 30)
    np.testing.assert_array_equal(again.array, corrected[30])  # the next slice row reuses the volume's fit
    with pytest.raises(DataError, match="n4_3d needs a 3D source"):
        run_ops(Item(array=image[28], meta={"source": "slice.png"}), ops)
