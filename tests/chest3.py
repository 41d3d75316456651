"""The three-class chest X-ray task built at test time from the shared Kermany images: NORMAL, bacterial and viral
pneumonia (from the file names personNNN_bacteria_MMM / personNNN_virus_MMM); patients scoped to their folder."""
import re
from pathlib import Path

import pandas as pd

CLASSES = ["NORMAL", "bacterial", "viral"]
PATIENT = re.compile(r"((?:NORMAL2-)?IM-\d+|person\d+)")


def chest_class(name: str) -> str:
    """NORMAL, bacterial or viral from a Kermany file name."""
    if "_bacteria_" in name:
        return "bacterial"
    return "viral" if "_virus_" in name else "NORMAL"


def chest_rows(root: Path, folder: str) -> pd.DataFrame:
    """Every image of train/ or test/ with its class and patient (ids restart per folder, so they are scoped)."""
    files = sorted((root / folder).glob("*/*.jpeg"))
    return pd.DataFrame({"image": [str(f) for f in files], "label": [chest_class(f.name) for f in files],
                         "patient_id": [f"{folder}-{PATIENT.search(f.name).group(1)}" for f in files],
                         "split": folder})


def three_class_csv(shared_data: Path, out: Path, per_class: dict | None = None) -> Path:
    """Write the three-class CSV; ``per_class`` {"train": n, "val": n, "test": n} takes n images of each class per
    split (val from train/ by patient, one image per patient); None keeps every image with the split column train
    and test (val is then drawn by medfit's data.val_fraction)."""
    root = shared_data / "chest-xray-pneumonia-224"
    train, test = chest_rows(root, "train"), chest_rows(root, "test")
    if per_class is None:
        pd.concat([train, test]).to_csv(out, index=False)
        return out
    one = lambda df: df.drop_duplicates("patient_id")  # noqa: E731
    patients = sorted(train["patient_id"].unique())
    val_patients = set(patients[::5])
    parts = {"train": one(train[~train["patient_id"].isin(val_patients)]),
             "val": one(train[train["patient_id"].isin(val_patients)]), "test": one(test)}
    rows = []
    for split, df in parts.items():
        for _, g in df.groupby("label"):
            step = max(1, len(g) // per_class[split])
            rows.append(g.iloc[::step].head(per_class[split]).assign(split=split))
    pd.concat(rows).to_csv(out, index=False)
    return out
