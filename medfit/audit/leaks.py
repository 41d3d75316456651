"""Identifier leaks: one patient, study, DICOM series or DICOM instance in more than one split."""
from __future__ import annotations

import pandas as pd

# manifest column (or fingerprint field) -> what it identifies; the first present source of each kind is used
ID_COLUMNS = {
    "patient": ["patient_id"],
    "study": ["study_id", "study_uid", "StudyInstanceUID"],
    "series": ["series_uid", "SeriesInstanceUID"],
    "instance": ["sop_uid", "SOPInstanceUID"],
}


def id_table(df: pd.DataFrame, records: pd.DataFrame | None = None) -> pd.DataFrame:
    """One column per identifier kind, from the manifest or, for DICOM, from the file headers; '' when unknown."""
    table = pd.DataFrame(index=df.index)
    for kind, columns in ID_COLUMNS.items():
        values = pd.Series("", index=df.index)
        for col in columns:
            if col in df.columns:
                values = df[col].fillna("").astype(str)
                break
        if records is not None and kind != "patient":
            field = {"study": "study_uid", "series": "series_uid", "instance": "sop_uid"}[kind]
            if field in records.columns:
                header = records[field].fillna("").astype(str).set_axis(df.index)
                values = values.where(values != "", header)
        table[kind] = values
    return table


def id_leaks(df: pd.DataFrame, ids: pd.DataFrame) -> list[dict]:
    """Identifiers found in more than one split: {kind, id, splits, rows}."""
    leaks = []
    for kind in ids.columns:
        known = ids[kind] != ""
        if not known.any():
            continue
        frame = pd.DataFrame({"id": ids.loc[known, kind], "split": df.loc[known, "split"].astype(str)})
        spread = frame.groupby("id")["split"].nunique()
        groups = frame.groupby("id").groups
        for value in spread[spread > 1].index:
            rows = list(groups[value])
            leaks.append({"kind": kind, "id": str(value), "splits": sorted(set(frame.loc[rows, "split"])),
                          "rows": [int(r) for r in rows]})
    return leaks
