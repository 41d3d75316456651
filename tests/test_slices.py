"""Key-slice selection: given, largest mask-label area, centre; k neighbours at the edges and inside the label."""
import numpy as np
import pandas as pd
import pytest

from medfit.data.slices import centre_slice, choose_key_slice, key_slice_from_mask, mask_areas, neighbour_indices
from medfit.errors import DataError


def _mask() -> np.ndarray:
    m = np.zeros((10, 8, 8), dtype=np.uint8)
    m[3, :2] = 1      # label 1: 16 voxels on slice 3
    m[6, :4] = 1      # label 1: 32 voxels on slice 6 (the largest)
    m[5, :3] = 2      # label 2 only on slice 5
    m[6, 4:5] = 2     # label 2: 8 voxels on slice 6, fewer than its 24 on slice 5
    return m


def test_key_slice_is_the_largest_area_of_the_label():
    m = _mask()
    assert key_slice_from_mask(m, 1) == 6
    assert key_slice_from_mask(m, 2) == 5
    assert mask_areas(m, None).tolist() == [0, 0, 0, 16, 0, 24, 40, 0, 0, 0]
    assert key_slice_from_mask(m) == 6  # any label
    tie = np.zeros((9, 2, 2)); tie[[1, 5, 8]] = 1
    assert key_slice_from_mask(tie) == 1  # ties: the lowest index


def test_empty_label_and_missing_mask_are_clear_errors():
    with pytest.raises(DataError, match="label 3"):
        key_slice_from_mask(_mask(), 3, "vb.nii.gz")
    with pytest.raises(DataError, match="no mask"):
        choose_key_slice("mask", 10)
    with pytest.raises(DataError, match="outside the volume"):
        choose_key_slice("given", 10, given=12)


def test_given_and_centre_rules():
    assert choose_key_slice("given", 10, given=4) == 4
    assert choose_key_slice("given", 10, given=None) == 5 == centre_slice(10)
    assert choose_key_slice("centre", 7) == 3
    assert choose_key_slice("mask", 10, mask=_mask(), label=2) == 5


def test_neighbours_repeat_the_edge_and_stay_inside_the_label():
    assert neighbour_indices(5, 2, 10) == [3, 4, 5, 6, 7]
    assert neighbour_indices(0, 2, 10) == [0, 0, 0, 1, 2]
    assert neighbour_indices(9, 1, 10) == [8, 9, 9]
    valid = mask_areas(_mask(), 1) > 0  # label 1 on slices 3 and 6 only
    assert neighbour_indices(6, 2, 10, valid) == [3, 6, 6, 6, 6]


def test_mask_rule_reproduces_the_spine_csv_key_slices(shared_data):
    """configs/ovcf-mri.csv lists each vertebral body at the sagittal slice where it is largest."""
    from medfit.config import VolumeConfig
    from medfit.data.manifest import absolute_ref
    from medfit.data.rows import Row
    from medfit.data.studies import key_slices

    csv = pd.read_csv("configs/ovcf-mri.csv")
    volume = VolumeConfig(key_slice="mask", neighbours=2)
    rows = csv[csv["image"].str.contains("VB1_12_F02.nii.gz|VB1_10_DzZ_T1.nii.gz")]  # DzZ_T1 label 2: a tie
    assert len(rows) >= 10
    base = __import__("pathlib").Path("configs")
    for _, row in rows.iterrows():
        row = row.copy()
        row["image"], row["mask"] = absolute_ref(row["image"], base), absolute_ref(row["mask"], base)
        key, indices = key_slices(Row.of(row), volume)
        assert key == int(row["slice_index"])
        assert len(indices) == 5 and indices[2] == key
