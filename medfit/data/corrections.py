"""A reviewer's decisions applied to a manifest (``data.corrections``, the CSV the review page downloads): ``drop``
removes the image's rows, ``relabel`` gives them the new label, ``keep`` marks them reviewed (column ``reviewed``)
so the audit, the label-issue ranking and the review page stop flagging them."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from medfit.errors import DataError

if TYPE_CHECKING:  # the manifest module imports this one
    from medfit.data.manifest import Manifest

log = logging.getLogger(__name__)

DECISIONS = ("keep", "drop", "relabel")
COLUMNS = ["image", "decision", "label", "finding"]


def read_corrections(path: str | Path, absolute: Callable[[str, Path], str]) -> pd.DataFrame:
    """The decisions of a corrections CSV (columns image, decision, label; ``finding`` optional), one per image;
    ``absolute(ref, folder)`` makes relative image references absolute against the CSV's folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.corrections {path}: file not found; download it from the review page (medfit review)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("image", "decision") if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; a corrections CSV has image, decision, label")
    table["decision"] = table["decision"].str.strip().str.lower()
    bad = sorted(set(table["decision"]) - set(DECISIONS))
    if bad:
        raise DataError(f"{path}: decisions {bad[:5]} are not one of {list(DECISIONS)}; fix those rows")
    if "label" not in table:
        table["label"] = ""
    empty = table.loc[(table["decision"] == "relabel") & (table["label"].str.strip() == ""), "image"]
    if len(empty):
        raise DataError(f"{path}: relabel without a new label for {list(empty[:3])}; fill the label column")
    table["image"] = [absolute(ref, path.parent) for ref in table["image"]]
    twice = table.drop_duplicates(["image", "decision", "label"])["image"]
    if twice.duplicated().any():
        raise DataError(f"{path}: different decisions for {list(twice[twice.duplicated()][:3])}; keep one per image")
    return table.drop_duplicates("image").reset_index(drop=True)


def _class_index(value: str, class_names: list[str], source: str) -> int:
    """A new label given as a class name (or its index)."""
    if value in class_names:
        return class_names.index(value)
    if value.isdigit() and int(value) < len(class_names):
        return int(value)
    raise DataError(f"{source}: relabel to {value!r}, which is not one of the classes {class_names}")


def apply_corrections(manifest: Manifest, table: pd.DataFrame, source: str = "data.corrections") -> Manifest:
    """Drop, relabel and mark reviewed the rows named in ``table``; an image the manifest lacks is an error."""
    df = manifest.df.copy()
    images = df["image"].astype(str)
    unknown = sorted(set(table["image"]) - set(images))
    if unknown:
        raise DataError(f"{source}: {len(unknown)} image(s) not in the data, e.g. {unknown[0]}; was the CSV made "
                        "for other data? remove those rows")
    decided = dict(zip(table["image"], zip(table["decision"], table["label"].str.strip())))
    relabel = {img: lab for img, (d, lab) in decided.items() if d == "relabel"}
    if relabel and manifest.target.is_multilabel:
        raise DataError(f"{source}: relabel needs a single-label task; drop those images or fix their label columns")
    for img, label in relabel.items():
        df.loc[images == img, manifest.label_columns[0]] = _class_index(label, list(manifest.class_names), source)
    keep = {img for img, (d, _) in decided.items() if d == "keep"}
    df["reviewed"] = reviewed_mask(df) | images.isin(keep)
    dropped = images.isin({img for img, (d, _) in decided.items() if d == "drop"})
    log.info("%s: %d row(s) dropped, %d relabelled, %d kept as reviewed", source, int(dropped.sum()),
             int(images.isin(set(relabel)).sum()), int(images.isin(keep).sum()))
    return manifest.with_df(df[~dropped.to_numpy()])


def reviewed_mask(df: pd.DataFrame) -> pd.Series:
    """True for rows a reviewer kept (column ``reviewed``, as written or read back from a CSV)."""
    if "reviewed" not in df:
        return pd.Series(False, index=df.index)
    return df["reviewed"].astype(str).str.strip().str.lower().isin(["true", "1", "1.0"])
