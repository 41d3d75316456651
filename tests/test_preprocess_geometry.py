"""Key slices, neighbour rows and study inputs in the geometry the recipe makes (D3): after ct-sagittal the GE head CT
has 250 sagittal slices, not its 37 resampled axial ones; mask key slices are found in the reformatted mask."""
import numpy as np
import pandas as pd
import pytest

from medfit.config import config_from_dict, updated
from medfit.data.manifest import build_manifest
from medfit.data.rows import Row
from medfit.io import read_volume
from medfit.preprocess import Recipe, load_prepared
from medfit.preprocess.intensity import apply_window
from medfit.preprocess.prepared import prepared_geometry
from medfit.preprocess.reformat import reformat
from medfit.preprocess.study import input_loader, study_rows

SERIES = "ct-head-dicom-series-ge/series"
SPINE = "spine-mri-vb-sagittal/VB1_02_AKa3"


def study_config(tmp_path, rows: list[dict], **sections):
    """A CSV manifest of study rows (one train, one val) and a config reading it; audit off (one volume twice)."""
    table = pd.DataFrame([{**r, "label": i % 2, "patient_id": f"p{i}", "split": ("train", "val")[i % 2]}
                          for i, r in enumerate(rows)])
    table.to_csv(tmp_path / "studies.csv", index=False)
    return config_from_dict({"name": "geometry", "output_dir": str(tmp_path / "runs"),
                             "data": {"source": "csv", "root": str(tmp_path / "studies.csv"), "image_size": 32,
                                      "val_fraction": 0.0},
                             "audit": {"enabled": False}, **sections})


@pytest.fixture(scope="module")
def sagittal_slices(shared_data):
    """The slice count of the bone-windowed GE series reformatted to 1 mm sagittal, computed here directly."""
    vol = read_volume(str(shared_data / SERIES))
    vol.array = apply_window(vol.array, 400.0, 1800.0)
    return reformat(vol, "sagittal", 1.0).array.shape[0]


def test_key_slice_and_neighbours_are_counted_in_sagittal_slices(shared_data, tmp_path, sagittal_slices):
    series = str(shared_data / SERIES)
    assert sagittal_slices == 250
    cfg = study_config(tmp_path, [{"image": series}, {"image": series}], preprocess={"recipe": "ct-sagittal"},
                       volume={"mode": "slice", "key_slice": "centre", "neighbours": 1})
    recipe = Recipe.of_experiment(cfg)
    assert prepared_geometry(recipe)(Row(series), False) == (250, None)
    manifest = study_rows(build_manifest(cfg), cfg)  # the study rows training reads (prepare_run without its checks)
    assert sorted(manifest.df["slice_index"].unique()) == [124, 125, 126]  # was 17, 18, 19 (of 37 axial slices)
    # 2.5D: the stack is those three sagittal slices, as load_prepared makes each
    load, _ = input_loader(updated(cfg, {"volume.mode": "2.5d"}), manifest.df.drop(columns=["slice_index", "offset"]))
    stack = load(manifest.df.iloc[0].drop(["slice_index", "offset"]))
    expected = np.stack([load_prepared(Row(series, i), recipe)[0] for i in (124, 125, 126)])
    np.testing.assert_array_equal(stack, expected)


def test_slice_set_spans_every_sagittal_slice(shared_data, tmp_path):
    series = str(shared_data / SERIES)
    cfg = study_config(tmp_path, [{"image": series}], preprocess={"recipe": "ct-sagittal"},
                       volume={"mode": "slice_set", "slices": 5}, model={"name": "resnet10t"})
    load, studies = input_loader(cfg, pd.DataFrame({"image": [series]}))
    out = load(pd.Series({"image": series}))
    assert studies and out.shape == (5, 1, 32, 32)
    recipe = Recipe.of_experiment(cfg)
    for got, i in zip(out[:, 0], (0, 62, 124, 187, 249)):  # was 0, 9, 18, 27, 36: the first 37 sagittal slices
        np.testing.assert_array_equal(got, load_prepared(Row(series, i), recipe)[0])


def test_mask_key_slice_is_found_in_the_reformatted_mask(shared_data, tmp_path):
    image, mask = str(shared_data / f"{SPINE}.nii.gz"), str(shared_data / f"{SPINE}_vbmask.nii.gz")
    resliced = reformat(read_volume(mask), "sagittal", None, order=0, fill=0).array
    areas = (resliced == 2).reshape(len(resliced), -1).sum(axis=1)
    row = {"image": image, "mask": mask, "roi_label": 2}
    cfg = study_config(tmp_path, [row, row], volume={"mode": "slice", "key_slice": "mask"},
                       preprocess={"ops": [{"name": "reformat", "plane": "sagittal"}, {"name": "crop"},
                                           {"name": "minmax"}]})
    manifest = study_rows(build_manifest(cfg), cfg)  # the study rows training reads (prepare_run without its checks)
    key = int(manifest.df["slice_index"].iloc[0])
    assert key == int(np.argmax(areas)) == 114  # the stored mask's largest area is at slice 20, empty after reformat
    load, _ = input_loader(cfg, manifest.df)
    out = load(manifest.df.iloc[0])
    assert out.shape == (1, 32, 32) and 0 <= out.min() < out.max() <= 1 and out.std() > 0.05
