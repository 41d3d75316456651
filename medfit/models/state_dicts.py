"""Reading weight files safely (safetensors, or torch.load with weights_only=True; never a pickle) and the weights' own
input normalisation (timm pretrained_cfg, open_clip preprocess_cfg, Hugging Face processor)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from medfit.errors import WeightsError
from medfit.models.hub import SHARD_INDEXES, first_line

WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict", "state_dict_ema")
MANIFEST = "weights-manifest.json"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file or sharded folder: safetensors, or torch.load(weights_only=True); never pickle."""
    path = Path(path)
    if path.is_dir():
        index = next((path / i for i in SHARD_INDEXES if (path / i).is_file()), None)
        if index is None:
            raise WeightsError(f"{path}: no weight file and no shard index ({' / '.join(SHARD_INDEXES)})")
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in read_state_dict(path / shard).items()}
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, OSError, ValueError, EOFError) as exc:
        raise WeightsError(f"{path}: cannot read it as weights ({first_line(exc)}); medfit reads safetensors or "
                           f"torch.save'd tensors (weights_only=True), never arbitrary pickles") from None
    except Exception as exc:  # noqa: BLE001  (pickle.UnpicklingError for a pickled object, not tensors)
        raise WeightsError(f"{path}: not a tensor file ({first_line(exc)}); save the weights with "
                           f"safetensors.torch.save_file(model.state_dict(), ...)") from None
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj: object, path: Path | str = "") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: Lightning's ``state_dict``, a ``model``/``module`` wrapper, or itself."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, dict) else type(obj).__name__
        raise WeightsError(f"{path}: no tensors found (top level: {keys}); point at a state dict, a Lightning "
                           f"checkpoint or a medfit run folder")
    return tensors


def strip_prefix(state: dict[str, torch.Tensor], model_keys) -> tuple[dict[str, torch.Tensor], str]:
    """Drop the key prefix ('model.', 'module.', 'backbone.' ...) that maps most of the file's keys onto the model's.

    timm's clean_state_dict only knows 'module.'; SSL and Lightning checkpoints use many others.
    """
    model_keys = set(model_keys)
    votes: Counter[str] = Counter()
    for key in state:
        starts = [0] + [i + 1 for i, c in enumerate(key) if c == "."]
        prefix = next((key[:i] for i in starts if key[i:] in model_keys), None)
        if prefix is not None:
            votes[prefix] += 1
    prefix = votes.most_common(1)[0][0] if votes else ""
    if not prefix:
        return state, ""
    return {k.removeprefix(prefix): v for k, v in state.items()}, prefix


def is_xrv_file(path: Path) -> bool:
    """torchxrayvision release files (copied by ``pull --to``) keep their release names."""
    return path.suffix == ".pt" and path.name.endswith(("-best.pt", "-state.pt")) and "densenet121" in path.name


def read_torchxrayvision_file(path: Path) -> dict[str, torch.Tensor]:
    """A torchxrayvision release file (a whole pickled DenseNet) read with weights_only=True.

    torchxrayvision's own loader unpickles the whole file without restriction; here only the module classes of the DenseNet it
    builds are allowed, so the file cannot run code.
    """
    import torchxrayvision as xrv  # optional and heavy (scikit-image); only these files need it

    allowed = sorted({type(m) for m in xrv.models.DenseNet().modules()}, key=str)
    try:
        with torch.serialization.safe_globals(allowed + [set]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (UnpicklingError names the class the allowlist lacks)
        raise WeightsError(f"{path}: not a torchxrayvision DenseNet file medfit can read safely "
                           f"({first_line(exc)}); use the release file torchxrayvision downloads") from None
    return unwrap_state_dict(obj.state_dict() if isinstance(obj, torch.nn.Module) else obj, path)


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def normalisation_of(folder: Path | None, timm_name: str = "", source: str = "") -> dict | None:
    """The weights' own input normalisation: timm's pretrained_cfg, open_clip's preprocess_cfg or the HF processor's.

    None when the source does not say (a bare weight file or a medfit run: medfit feeds [0, 1] images).
    """
    if folder is not None and (folder / MANIFEST).is_file():
        return _json(folder / MANIFEST).get("normalisation")  # a `pull --to` folder keeps its source's
    if source.startswith("torchxrayvision:"):
        # xrv.datasets.normalize maps [0, 255] to [-1024, 1024]: on [0, 1] images that is (x - 0.5) / (1 / 2048).
        return {"mean": [0.5], "std": [1 / 2048], "channels": 1, "size": 224, "interpolation": None,
                "from": "torchxrayvision (datasets.normalize to [-1024, 1024])"}
    if folder is not None and "pretrained_cfg" in _json(folder / "config.json"):
        return _from_timm_cfg(_json(folder / "config.json")["pretrained_cfg"], "timm pretrained_cfg (config.json)")
    if folder is not None and (folder / "open_clip_config.json").is_file():
        return _from_open_clip_cfg(_json(folder / "open_clip_config.json"))
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        return _from_hf_processor(_json(folder / "preprocessor_config.json"))
    if timm_name:
        return _from_timm_cfg(timm.models.get_pretrained_cfg(timm_name).to_dict(), "timm pretrained_cfg")
    return None


def _from_timm_cfg(cfg: dict, origin: str) -> dict:
    size = cfg.get("input_size") or (3, 224, 224)
    return {"mean": list(cfg.get("mean") or ()), "std": list(cfg.get("std") or ()), "channels": size[0],
            "size": size[-1], "interpolation": cfg.get("interpolation"), "from": origin}


def _from_open_clip_cfg(cfg: dict) -> dict:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD  # heavy; only open_clip sources need it

    pre = cfg.get("preprocess_cfg", {})
    size = cfg.get("model_cfg", cfg).get("vision_cfg", {}).get("image_size", pre.get("size", 224))
    return {"mean": list(pre.get("mean", OPENAI_DATASET_MEAN)), "std": list(pre.get("std", OPENAI_DATASET_STD)),
            "channels": 3, "size": size, "interpolation": pre.get("interpolation", "bicubic"),
            "from": "open_clip preprocess_cfg" if "mean" in pre else "open_clip defaults (OpenAI CLIP)"}


def _from_hf_processor(cfg: dict) -> dict:
    size = cfg.get("crop_size") or cfg.get("size") or {}
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or size.get("width")
    resample = {0: "nearest", 2: "bilinear", 3: "bicubic"}.get(cfg.get("resample"))
    return {"mean": list(cfg.get("image_mean", ())), "std": list(cfg.get("image_std", ())), "channels": 3,
            "size": size, "interpolation": resample, "from": "Hugging Face processor (preprocessor_config.json)"}
