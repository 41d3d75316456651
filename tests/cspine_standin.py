"""A small multi-study stand-in for cervical-spine CT, built at test time from the one real head CT series in
../shared/data/ct-head-dicom-series-ge: each study is an in-plane crop and a run of consecutive slices of that
series (tilted gantry and uneven spacing kept), written as its own DICOM series folder with its own UIDs.

What stands in for what: one patient's head CT for many patients' cervical spines, and C1-C7 / any labels drawn by a
fixed pattern (they carry no image information; the tests check the pipeline's numbers, not a fracture detector)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.uid import generate_uid

LEVELS = [f"C{k}" for k in range(1, 8)]
# per split, the fracture pattern of each study (levels 1..7); every level has a positive and a negative study in
# val and test, so each label's threshold can be chosen on val
PATTERNS = {"train": [(1, 3, 5, 7), (2, 4, 6), (), (1, 2), (5, 6, 7), (3, 4)],
            "val": [(1, 3, 5, 7), (2, 4, 6), ()],
            "test": [(2, 4, 6), (1, 3, 5, 7), ()]}


def _position(ds, r0: int, c0: int) -> list[float]:
    """Patient position of pixel (r0, c0): IPP + c0 * dx * row direction + r0 * dy * column direction."""
    iop = np.asarray(ds.ImageOrientationPatient, float)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    return (np.asarray(ds.ImagePositionPatient, float) + c0 * dx * iop[:3] + r0 * dy * iop[3:]).round(6).tolist()


def write_study(files: list[Path], out: Path, r0: int, c0: int, size: int, patient: str) -> Path:
    """The crop [r0:r0+size, c0:c0+size] of every file as a new series in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        pixels = ds.pixel_array[r0:r0 + size, c0:c0 + size].copy()
        ds.ImagePositionPatient = _position(ds, r0, c0)
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.tobytes()
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.InstanceNumber = patient, i + 1
        ds.save_as(out / f"{i + 1:02d}.dcm")
    return out


def build_standin(series: Path, out: Path, size: int = 128, slices: int = 20, seed: int = 0) -> pd.DataFrame:
    """Write the stand-in studies under ``out`` and return their manifest rows (image = series folder)."""
    files = sorted(Path(series).glob("*.dcm"))
    rng = np.random.default_rng(seed)
    rows = []
    for split, patterns in PATTERNS.items():
        for j, levels in enumerate(patterns):
            patient = f"{split}{j:02d}"
            start = int(rng.integers(0, len(files) - slices + 1))
            r0, c0 = (int(v) for v in rng.integers(128, 512 - size - 64, size=2))
            folder = write_study(files[start:start + slices], out / patient, r0, c0, size, patient)
            labels = {c: int(k + 1 in levels) for k, c in enumerate(LEVELS)}
            rows.append({"image": str(folder), "patient_id": patient, "split": split, **labels,
                         "any": int(bool(levels)), "first_slice": start, "crop": f"{r0},{c0}"})
    return pd.DataFrame(rows)
