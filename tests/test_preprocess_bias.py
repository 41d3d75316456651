"""N4 gives the same field whatever ITK's default thread count (the machine's cores, or a Dask worker's), so that a
distributed `medfit preprocess` and another machine fill bit-identical caches."""
import numpy as np
import SimpleITK as sitk

from medfit.io import read_volume
from medfit.preprocess.bias import n4_correct


def test_n4_is_bit_identical_whatever_the_default_itk_thread_count(shared_data):
    folder = shared_data / "spine-mri-vb-sagittal"
    image = read_volume(str(folder / "VB1_02_AKa3.nii.gz")).array[28].astype(np.float32)
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    out = {}
    try:
        for threads in (1, 4):  # 1 vs 4 ITK threads differed by up to 7e-4 before N4's threads were pinned
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            out[threads] = n4_correct(image, shrink=4, iterations=20, levels=3)
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads  # restored after the call
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
    assert np.array_equal(out[1], out[4]) and not np.array_equal(out[1], image)
