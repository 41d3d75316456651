"""One manifest row as the preprocessing sees it: the image reference and, for studies, slice, mask and ROI label."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# What identifies a manifest or predictions row: the image, and for study rows its study, slice, offset and ROI label.
ROW_KEYS = ("image", "study_id", "slice_index", "offset", "roi_label", "split")


def row_keys(*tables) -> list[str]:
    """The identifying columns every one of ``tables`` has (what to match their rows on)."""
    return [k for k in ROW_KEYS if all(k in t for t in tables)]


def cell(row, name: str):
    """A row's value, or None when the column is absent, NaN or blank."""
    value = row.get(name, None) if hasattr(row, "get") else getattr(row, name, None)
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return None
    return value


def optional_int(value) -> int | None:
    """An integer cell (CSV readers give floats when a column has blanks), or None."""
    return None if value is None else int(float(value))


@dataclass(frozen=True)
class Row:
    """What ``load_prepared`` reads: an image reference, and optionally a slice of it, a label mask and its label."""

    image: str
    slice_index: int | None = None
    mask: str | None = None
    roi_label: int | None = None

    @classmethod
    def of(cls, row) -> "Row":
        """The Row of a manifest row (a pandas Series or a mapping); paths are taken as written (absolute)."""
        mask = cell(row, "mask")
        return cls(str(cell(row, "image")), optional_int(cell(row, "slice_index")),
                   str(mask) if mask is not None else None, optional_int(cell(row, "roi_label")))

    def at_slice(self, index: int) -> "Row":
        """The same study row at another slice."""
        return Row(self.image, int(index), self.mask, self.roi_label)
