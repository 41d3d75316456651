"""Named recipes and the registry of composable preprocessing operations, each with recorded parameters."""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from medfit.errors import ConfigError, DataError
from medfit.io.volume import Volume
from medfit.preprocess import bias, contrast, crop, intensity, reformat


@dataclass
class Item:
    """What flows through a recipe: a 2D slice (or a whole volume before slicing) and its optional label mask."""

    array: np.ndarray
    mask: np.ndarray | None = None
    spacing: tuple = (1.0, 1.0)
    meta: dict = field(default_factory=dict)
    volume: Volume | None = None  # set while the item is still 3D
    mask_volume: Volume | None = None
    roi_label: int | None = None

    @property
    def source(self) -> str:
        """The source reference, for error messages."""
        return str(self.meta.get("source", "image"))


@dataclass(frozen=True)
class Op:
    """One preprocessing operation: a function of an Item plus keyword parameters."""

    name: str
    fn: Callable[..., Item]
    needs_volume: bool = False
    help: str = ""
    scale: str = ""  # the intensity scale the op leaves: "unit" ([0, 1]), "zscore", or "" (keeps the input's)

    def defaults(self) -> dict:
        """The operation's parameters and their default values."""
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in list(sig.parameters.items())[1:]}


def _window(item: Item, preset: str = "", center: float | None = None, width: float | None = None) -> Item:
    c, w = intensity.resolve_window(preset, center, width, item.meta)
    if item.volume is not None:
        item.volume = replace(item.volume, array=intensity.apply_window(item.volume.array, c, w))
        return item
    item.array = intensity.apply_window(item.array, c, w)
    return item


def _reformat(item: Item, plane: str = "sagittal", spacing: float | None = None) -> Item:
    if item.volume is None:
        raise DataError(f"{item.source}: reformat needs a 3D source (DICOM series or NIfTI), got a 2D image")
    item.volume = reformat.reformat(item.volume, plane, spacing)
    if item.mask_volume is not None:
        item.mask_volume = reformat.reformat(item.mask_volume, plane, spacing, order=0, fill=0)
    return item


# Several manifest rows (one per vertebra) often share one slice, and every slice row of a study re-reads its volume:
# remember recent N4 results in this process (2D: a few dozen slices; 3D: the last two volumes).
_N4_MEMO: dict[str, np.ndarray] = {}
_N4_VOLUME_MEMO: dict[str, np.ndarray] = {}


def _n4_key(array: np.ndarray, spacing, mask: np.ndarray | None, *params) -> str:
    h = hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    h.update(repr((array.shape, tuple(spacing), *params)).encode())
    if mask is not None:
        h.update(np.ascontiguousarray(mask > 0).tobytes())
    return h.hexdigest()


def _memoised(store: dict, limit: int, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    if key not in store:
        if len(store) >= limit:
            store.pop(next(iter(store)))
        store[key] = compute()
    return store[key].copy()


def _n4(item: Item, shrink: int = 4, iterations: int = 50, levels: int = 4, use_mask: bool = False) -> Item:
    mask = item.mask if use_mask else None
    key = _n4_key(item.array, item.spacing, mask, shrink, iterations, levels)
    item.array = _memoised(_N4_MEMO, 32, key, lambda: bias.n4_correct(item.array, item.spacing, mask, shrink,
                                                                       iterations, levels, source=item.source))
    return item


def _n4_volume(item: Item, shrink: int = 4, iterations: int = 50, levels: int = 4, use_mask: bool = False) -> Item:
    """N4 on the whole volume (one 3D bias field) before the slice is cut."""
    if item.volume is None:
        raise DataError(f"{item.source}: n4_3d needs a 3D source (NIfTI or DICOM series); use n4 for 2D images")
    vol = item.volume
    mask = item.mask_volume.array if use_mask and item.mask_volume is not None else None
    key = _n4_key(vol.array, vol.spacing, mask, shrink, iterations, levels)
    corrected = _memoised(_N4_VOLUME_MEMO, 2, key, lambda: bias.n4_correct(vol.array, vol.spacing, mask, shrink,
                                                                             iterations, levels, source=item.source))
    item.volume = replace(vol, array=corrected)
    return item


def _crop(item: Item, box: list | None = None, label: int | None = None, margin: float = 0.1,
          square: bool = True) -> Item:
    if box is not None:
        region = tuple(int(v) for v in box)
    elif item.mask is not None:
        region = crop.mask_box(item.mask, label if label is not None else item.roi_label, source=item.source)
        region = crop.expand_box(region, item.array.shape, margin, square)
    else:
        raise DataError(f"{item.source}: crop needs a mask (manifest column 'mask', label from 'roi_label') "
                        "or a box [r0, c0, r1, c1]; add one or remove crop from the recipe")
    item.array = crop.crop_to_box(item.array, region)
    if item.mask is not None:
        item.mask = crop.crop_to_box(item.mask, region)
    item.meta["crop_box"] = list(region)
    return item


def _clip(item: Item, low: float = 5.0, high: float = 95.0, in_mask: bool = False) -> Item:
    item.array = intensity.clip_quantiles(item.array, low, high, item.mask if in_mask else None)
    return item


def _minmax(item: Item) -> Item:
    item.array = intensity.minmax(item.array)
    return item


def _zscore(item: Item, in_mask: bool = False) -> Item:
    item.array = intensity.zscore(item.array, item.mask if in_mask else None)
    return item


def _clahe(item: Item, clip: float = 2.5, grid: int = 4) -> Item:
    item.array = contrast.clahe(item.array, clip, grid)
    return item


def _unsharp(item: Item, sigma: float = 1.0, amount: float = 2.0) -> Item:
    item.array = contrast.unsharp_mask(item.array, sigma, amount)
    return item


OPS: dict[str, Op] = {op.name: op for op in [
    Op("window", _window, help="CT window: preset (brain, soft_tissue, bone, lung, file) or center/width -> [0, 1]",
       scale="unit"),
    Op("reformat", _reformat, needs_volume=True, help="resample the volume to sagittal/coronal/axial, isotropic"),
    Op("n4", _n4, help="N4 bias-field correction (SimpleITK) of the 2D slice, fitted on the image shrunk by `shrink`"),
    Op("n4_3d", _n4_volume, needs_volume=True,
       help="N4 bias-field correction of the whole volume (one 3D field) before the slice is cut"),
    Op("crop", _crop, help="ROI crop: a box [r0, c0, r1, c1], or the mask label (row's label by default) + margin"),
    Op("clip", _clip, help="clip to the [low, high] percentiles"),
    Op("minmax", _minmax, help="scale to [0, 1]", scale="unit"),
    Op("zscore", _zscore, help="zero mean, unit variance; the model then sees z-scores (not squeezed into [0, 1])",
       scale="zscore"),
    Op("clahe", _clahe, help="contrast-limited adaptive histogram equalisation (OpenCV) -> [0, 1]", scale="unit"),
    Op("unsharp", _unsharp, help="unsharp masking: image + amount * (image - gaussian(sigma))"),
]}

RECIPES: dict[str, list[dict]] = {
    "": [],
    "mri-ovcf": [{"name": "n4"}, {"name": "crop"}, {"name": "clip", "low": 5.0, "high": 95.0}, {"name": "minmax"}],
    # the same with one 3D bias field per volume (slower: ~9 s per 57x361x361 spine volume at shrink 8, 20x3 its)
    "mri-ovcf-3d": [{"name": "n4_3d"}, {"name": "crop"}, {"name": "clip", "low": 5.0, "high": 95.0},
                    {"name": "minmax"}],
    "radiograph": [{"name": "clahe", "clip": 2.5, "grid": 4}, {"name": "unsharp", "sigma": 1.0, "amount": 2.0}],
    # 1 mm: isotropic at the CT's 0.49 mm pixel spacing would be ~8x more voxels for no gain at classifier sizes
    "ct-sagittal": [{"name": "window", "preset": "bone"}, {"name": "reformat", "plane": "sagittal", "spacing": 1.0}],
}


def resolve_ops(recipe: str, ops: list[dict]) -> list[dict]:
    """The recipe's operations followed by the explicit ``ops``, each with all its parameters filled in."""
    if recipe not in RECIPES:
        raise ConfigError(f"preprocess.recipe: unknown recipe {recipe!r}; use one of "
                          f"{', '.join(r for r in RECIPES if r)} or leave it empty")
    resolved = []
    for i, spec in enumerate(list(RECIPES[recipe]) + list(ops)):
        where = f"preprocess.ops[{i - len(RECIPES[recipe])}]" if i >= len(RECIPES[recipe]) else f"recipe {recipe}"
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{where}: each op is a mapping with a name, e.g. {{name: clahe, clip: 2.5}}")
        op = OPS.get(spec["name"])
        if op is None:
            raise ConfigError(f"{where}: unknown op {spec['name']!r}; use one of {', '.join(OPS)}")
        params = op.defaults()
        for key, value in spec.items():
            if key == "name":
                continue
            if key not in params:
                raise ConfigError(f"{where}.{key}: unknown parameter of {op.name} (allowed: {', '.join(params)})")
            params[key] = value
        resolved.append({"name": op.name, **params})
    return resolved


def output_scale(resolved: list[dict]) -> str:
    """The intensity scale a recipe hands to the model: that of its last scaling op ("unit" when none scales)."""
    scales = [OPS[spec["name"]].scale for spec in resolved if OPS[spec["name"]].scale]
    return scales[-1] if scales else "unit"


def volume_op_count(resolved: list[dict]) -> int:
    """How many leading ops work on the whole volume: up to and including the last volume-only op (reformat)."""
    return 1 + max((i for i, s in enumerate(resolved) if OPS[s["name"]].needs_volume), default=-1)


def apply_ops(item: Item, specs: list[dict]) -> Item:
    """Apply resolved ops in order, refusing one that produces NaN or infinite values."""
    for spec in specs:
        item = OPS[spec["name"]].fn(item, **{k: v for k, v in spec.items() if k != "name"})
        if not np.all(np.isfinite(item.array)):
            raise DataError(f"{item.source}: op {spec['name']} produced NaN or infinite values; check the image")
    return item


def run_ops(item: Item, resolved: list[dict], slice_index: int | None = None) -> Item:
    """Apply resolved ops; a 3D item is cut to one slice after its last volume-only op (the middle slice by default)."""
    k = volume_op_count(resolved)
    item = apply_ops(item, resolved[:k])
    if item.volume is not None:
        item = take_slice(item, slice_index)
    return apply_ops(item, resolved[k:])


def take_slice(item: Item, index: int | None) -> Item:
    """Cut a 3D item to one 2D slice along axis 0 (with the matching mask slice)."""
    vol = item.volume
    n = vol.array.shape[0]
    idx = n // 2 if index is None else int(index)
    if not -n <= idx < n:
        raise DataError(f"{item.source}: slice index {idx} out of range (the volume has {n} slices)")
    item.array = np.array(vol.array[idx])  # a copy: the volume may be shared by other slices' items
    item.spacing = tuple(vol.spacing[1:])
    if item.mask_volume is not None:
        item.mask = item.mask_volume.array[idx]
    item.meta["slice_index"] = idx
    item.volume = item.mask_volume = None
    return item
