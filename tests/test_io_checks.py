"""The checks every reader shares: non-finite values and file content versus file name."""
import numpy as np
import pytest

from medfit.errors import DataError
from medfit.io.checks import describe_content, require_finite, sniff


def test_require_finite_counts_and_locates_the_first_bad_value():
    arr = np.ones((2, 3, 4), np.float32)
    arr[1, 2, 0], arr[1, 2, 3] = np.nan, -np.inf
    with pytest.raises(DataError, match=r"^vol\.nii: 2 of 24 values are NaN or infinite \(first at index \(1, 2, 0\)\)"):
        require_finite(arr, "vol.nii")
    ints = np.arange(5)
    assert require_finite(ints, "x") is ints and require_finite(np.ones(3), "x").sum() == 3


def test_sniff_by_content(tmp_path):
    (tmp_path / "a").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 10)
    (tmp_path / "b").write_bytes(b"\x89PNG\r\n\x1a\n....")
    (tmp_path / "c").write_bytes(b"")
    (tmp_path / "d").write_bytes(b"hello")
    assert sniff(tmp_path / "a") == ("DICOM file", "rename it to .dcm")
    assert sniff(tmp_path / "b")[0] == "PNG image" and sniff(tmp_path / "d") is None
    assert describe_content(tmp_path / "c") == "an empty file (0 bytes)"
    assert describe_content(tmp_path / "d") == "of an unrecognised format"
