"""Small PNG data URIs of model inputs (prepared exactly as in training) for the report's example cases."""
from __future__ import annotations

import base64

import cv2
import numpy as np

from medfit.errors import MedfitError
from medfit.explain.overlay import to_rgb
from medfit.preprocess.study import input_loader
from medfit.run_folder import RunFolder


def png_data_uri(image: np.ndarray, size: int = 96) -> str:
    """A (C, H, W) or (H, W) [0, 1] image as a size x size PNG data URI."""
    rgb = cv2.resize((to_rgb(image) * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


def input_thumbnails(run: RunFolder, images: list[str], size: int = 96) -> dict[str, str]:
    """Data URIs of the run's manifest rows for ``images`` (the first row of each; key slice of studies); an image
    that can no longer be read is left out."""
    if not run.has("manifest"):
        return {}
    manifest = run.read_manifest()
    rows = manifest[manifest["image"].astype(str).isin(set(images))]
    if "offset" in rows:
        rows = rows.sort_values("offset", key=lambda s: s.abs(), kind="stable")
    rows = rows.drop_duplicates("image")
    if rows.empty:
        return {}
    load, _ = input_loader(run.read_config(), rows)
    out = {}
    for _, row in rows.iterrows():
        try:
            out[str(row["image"])] = png_data_uri(load(row), size)
        except (MedfitError, OSError):
            continue
    return out

