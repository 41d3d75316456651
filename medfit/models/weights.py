"""Where pretrained weights come from: one source syntax, the Hugging Face cache, safe reading, a record of what was used.

A source is a weight file; a folder (model.safetensors / pytorch_model.bin, a Hugging Face model folder, or a
``medfit weights pull --to`` folder); a medfit run folder (its config and best checkpoint); ``timm:NAME`` (timm's
pretrained_cfg names its Hugging Face repo); ``hf-hub:ORG/REPO``; or ``torchxrayvision:WEIGHTS``. Hub sources resolve
through the standard Hugging Face cache: a cached snapshot is used as is, a missing one is downloaded when online, and
with HF_HUB_OFFLINE=1 (or ``offline=True``) nothing touches the network. Weight files are read as safetensors or with
``torch.load(weights_only=True)``, never as arbitrary pickles.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import yaml
from huggingface_hub import HfApi, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file

from medfit.errors import WeightsError
from medfit.models.finetune import merge_lora
from medfit.run_folder import RunFolder

log = logging.getLogger(__name__)

SCHEMES = ("timm:", "hf-hub:", "torchxrayvision:")
SOURCE_HELP = ("a weight file, a folder, a medfit run folder, timm:NAME (e.g. timm:resnet18.a1_in1k), "
               "hf-hub:ORG/REPO or torchxrayvision:WEIGHTS")
# Single-file weights a folder may hold, in order of preference (timm, transformers, open_clip names).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
CONFIG_FILES = ("config.json", "open_clip_config.json", "preprocessor_config.json")
METADATA_SUFFIXES = (".json", ".txt", ".model", ".jinja")  # configs, processors, tokenizers, chat templates
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
MANIFEST = "weights-manifest.json"
REGISTRY_FILE = Path(__file__).with_name("weights_registry.yaml")
TIMEOUT_S = 10.0  # the repo listing's deadline (huggingface_hub's API calls wait forever unless given one)
WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict", "state_dict_ema")


@dataclass
class ResolvedWeights:
    """A source resolved to files on this machine."""

    source: str  # as written in the config
    kind: str  # file | folder | run | timm | hf-hub | torchxrayvision
    path: Path  # the weight file (a run: its checkpoint; a sharded or multi-file model: its folder)
    folder: Path | None = None  # the model folder / HF snapshot holding the configs
    repo: str = ""
    revision: str = ""  # commit of the HF snapshot
    timm_name: str = ""  # timm:NAME sources: the pretrained tag

    def weight_files(self) -> list[Path]:
        """Every weight file the source consists of."""
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))

    def record(self) -> dict:
        """What the run folder keeps about its weights: exact source, revision, sha256 and normalisation."""
        files = {p.name: sha256_file(p) for p in self.weight_files()}
        return {"source": self.source, "kind": self.kind, "repo": self.repo or None, "revision": self.revision or None,
                "file": str(self.path), "sha256": files.get(self.path.name), "files": files,
                "normalisation": normalisation_of(self.folder, self.timm_name, self.source)}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_offline(offline: bool | None = None) -> bool:
    """The explicit flag, else HF_HUB_OFFLINE (read now, not when huggingface_hub was imported)."""
    if offline is not None:
        return offline
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in {"1", "ON", "YES", "TRUE"}


def hub_cache(cache_dir: str | Path = "") -> Path:
    """The Hugging Face hub cache: ``cache_dir``, else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


# --- resolving a source --------------------------------------------------------------------------------------------

def resolve_weights(spec: str, cache_dir: str | Path = "", offline: bool | None = None,
                    key: str = "model.pretrained") -> ResolvedWeights:
    """The files behind a weight source (downloading a hub source into the HF cache when online and not cached)."""
    spec = spec.strip()
    if spec.startswith("timm:"):
        return _resolve_timm(spec, cache_dir, offline)
    if spec.startswith("hf-hub:"):
        repo = spec.removeprefix("hf-hub:")
        folder = hub_snapshot(repo, spec, cache_dir, offline)
        return ResolvedWeights(spec, "hf-hub", main_weight_file(folder) or folder, folder, repo, folder.name)
    if spec.startswith("torchxrayvision:"):
        return _resolve_torchxrayvision(spec, offline)
    return resolve_local(spec.removeprefix("local-dir:"), key)


def resolve_local(spec: str, key: str = "model.pretrained") -> ResolvedWeights:
    """A weight file, a weight/model folder, or a medfit run folder on this machine."""
    p = Path(spec).expanduser()
    run = RunFolder(p)
    if p.is_file():
        return ResolvedWeights(spec, "file", p, p.parent)
    if p.is_dir() and run.is_run and run.checkpoint("best").is_file():
        return ResolvedWeights(spec, "run", run.checkpoint("best"), p)
    if p.is_dir() and main_weight_file(p):
        return ResolvedWeights(spec, "folder", main_weight_file(p), p)
    if p.is_dir() and any((p / i).is_file() for i in SHARD_INDEXES):  # a model saved in shards: the folder
        return ResolvedWeights(spec, "folder", p, p)
    if p.is_dir() and run.is_run:
        raise WeightsError(f"{run.checkpoint('best')}: run folder without a checkpoint; finish training that run "
                           f"(medfit train) or point {key} at its weight file")
    if p.is_dir():
        raise WeightsError(f"{p}: folder has no {' / '.join(WEIGHT_FILES[:2])} and is no run folder (a config and "
                           f"a best checkpoint); point {key} at {SOURCE_HELP}")
    random_init = ", or '' for random init" if key == "model.pretrained" else ""
    repo = f"; a Hugging Face repo is written hf-hub:{spec}" if re.fullmatch(r"[\w.-]+/[\w.-]+", spec) else ""
    raise WeightsError(f"{p}: pretrained weights not found; set {key} to {SOURCE_HELP} (on an offline machine: "
                       f"`medfit weights pull SOURCE --to DIR` where the Hub is reachable, copy DIR here)"
                       f"{random_init}{repo}")


def main_weight_file(folder: Path) -> Path | None:
    """The weight file of a folder (timm/open_clip/transformers names, else its only one), or None (sharded/absent)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    return files[0] if len(files) == 1 else None


def _resolve_timm(spec: str, cache_dir: str | Path, offline: bool | None) -> ResolvedWeights:
    """``timm:NAME``: timm's pretrained_cfg gives the Hugging Face repo (and file) of those weights."""
    name = spec.removeprefix("timm:")
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise WeightsError(f"{spec}: timm has no pretrained weights of that name; list them with "
                           f"timm.list_pretrained('{name.split('.')[0]}*') or see `medfit weights list`")
    if not cfg.hf_hub_id:
        raise WeightsError(f"{spec}: timm publishes these weights only at {cfg.url or 'no URL'}, not on the Hugging "
                           f"Face Hub; download the file and set model.pretrained to its path")
    folder = hub_snapshot(cfg.hf_hub_id, spec, cache_dir, offline)
    path = folder / cfg.hf_hub_filename if cfg.hf_hub_filename else main_weight_file(folder)
    if path is None or not path.is_file():
        raise WeightsError(f"{spec}: the cached snapshot {folder} has no weight file "
                           f"({cfg.hf_hub_filename or ' / '.join(WEIGHT_FILES[:2])}); run `medfit weights pull {spec}`")
    tag = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    return ResolvedWeights(spec, "timm", path, folder, cfg.hf_hub_id, folder.name, tag)


def _resolve_torchxrayvision(spec: str, offline: bool | None) -> ResolvedWeights:
    """``torchxrayvision:WEIGHTS``: the release file in torchxrayvision's own cache (its get_weights downloads it)."""
    import torchxrayvision as xrv  # optional and heavy (scikit-image); only these sources need it

    name = spec.removeprefix("torchxrayvision:")
    if name not in xrv.models.model_urls:
        raise WeightsError(f"{spec}: torchxrayvision has no weights {name!r}; choose one of "
                           f"{', '.join(k for k in xrv.models.model_urls if '-' in k)}")
    url = xrv.models.model_urls[name]["weights_url"]
    path = Path(xrv.utils.get_cache_dir()) / Path(url).name
    if not path.is_file():
        if is_offline(offline):
            raise WeightsError(f"{spec}: {path} is not there and this machine is offline; on a connected machine run "
                               f"`medfit weights pull {spec} --to DIR`, copy DIR here and point the config at it")
        try:
            path = Path(xrv.models.get_weights(name))
        except Exception as exc:  # noqa: BLE001  (requests raises many kinds; each becomes one line)
            raise WeightsError(f"{spec}: download of {url} into {path.parent} failed ({_first_line(exc)}); check the "
                               f"network, or download the file there by hand") from None
    return ResolvedWeights(spec, "torchxrayvision", path, path.parent)


# --- the Hugging Face cache ----------------------------------------------------------------------------------------

def cached_snapshot(repo: str, cache_dir: str | Path = "", revision: str = "main") -> Path | None:
    """The cached snapshot folder of ``repo`` (refs/<revision> -> snapshots/<commit>), without any network call."""
    for name in CONFIG_FILES + WEIGHT_FILES + SHARD_INDEXES + ("vocab.txt", "tokenizer.json"):
        found = try_to_load_from_cache(repo, name, cache_dir=str(hub_cache(cache_dir)), revision=revision)
        if isinstance(found, str):
            return Path(found).parent
    return None


def has_weights(folder: Path) -> bool:
    """Whether a folder holds a weight file or a shard index."""
    return any(p.name.endswith(WEIGHT_SUFFIXES) or p.name in SHARD_INDEXES for p in folder.iterdir())


def hub_snapshot(repo: str, source: str = "", cache_dir: str | Path = "", offline: bool | None = None,
                 files: list[str] | None = None, refresh: bool = False) -> Path:
    """The snapshot folder of a Hub repo: from the cache, else downloaded (config/tokenizer files + one weight format).

    ``files`` restricts what is needed/fetched (e.g. a text tower's config.json and vocab.txt); ``refresh`` asks the
    Hub for the newest revision even when a snapshot is cached.
    """
    source = source or f"hf-hub:{repo}"
    cache = hub_cache(cache_dir)
    folder = cached_snapshot(repo, cache)
    complete = folder is not None and (all((folder / f).is_file() for f in files) if files else has_weights(folder))
    if complete and (not refresh or is_offline(offline)):
        return folder
    if is_offline(offline):
        raise offline_miss(source, cache)
    return download_snapshot(repo, source, cache, files)


def offline_miss(source: str, cache: Path) -> WeightsError:
    """Not cached on an offline machine: how to bring the weights here."""
    return WeightsError(f"{source}: not in the HF cache {cache} and offline (HF_HUB_OFFLINE=1): on a connected machine "
                        f"run `medfit weights pull {source} --to DIR`, copy DIR here and point the config at DIR, or "
                        f"copy that machine's HF cache to {cache} (or set HF_HUB_CACHE to it)")


def select_files(files: list[str]) -> list[str]:
    """What medfit fetches from a repo: top-level config/tokenizer files and one weight format (safetensors first)."""
    top = [f for f in files if "/" not in f]
    meta = [f for f in top if f.endswith(METADATA_SUFFIXES)]
    for suffixes in ((".safetensors",), (".bin", ".pth", ".pt")):
        weights = [f for f in top if f.endswith(suffixes)]
        if weights:
            return meta + weights
    return meta


def download_snapshot(repo: str, source: str, cache: Path, files: list[str] | None = None) -> Path:
    """Download the selected files of ``repo`` (main) into the HF cache; every failure is one WeightsError line."""
    try:
        wanted = files or select_files(repo_files(repo))
        if not wanted:
            raise WeightsError(f"{source}: the repository holds no config or weight files medfit can use")
        paths = [Path(hf_hub_download(repo, f, cache_dir=str(cache), etag_timeout=TIMEOUT_S, endpoint=hub_endpoint()))
                 for f in wanted]
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001  (httpx, OSError and huggingface_hub errors: each becomes one line)
        raise hub_error(exc, source, repo, cache) from None
    folders = {p.parent for p, name in zip(paths, wanted) if "/" not in name}
    if len(folders) != 1:
        raise WeightsError(f"{source}: the repository changed while downloading ({len(folders)} revisions); run again")
    folder = folders.pop()
    log.info("%s: revision %s in %s (%d files)", source, folder.name, folder, len(paths))
    return folder


def hub_endpoint() -> str | None:
    """$HF_ENDPOINT read now (a mirror or a proxy of the Hub); None: huggingface_hub's default."""
    return os.environ.get("HF_ENDPOINT") or None


def repo_files(repo: str) -> list[str]:
    """The file names of a repo's main revision: one request with a deadline (list_repo_files retries ~25 s)."""
    info = HfApi(endpoint=hub_endpoint()).model_info(repo, timeout=TIMEOUT_S)
    return [s.rfilename for s in info.siblings or []]


def hub_error(exc: BaseException, source: str, repo: str, cache: Path) -> WeightsError:
    """One line for a failed Hub call: what happened, where the cache is, and the fix."""
    if isinstance(exc, OfflineModeIsEnabled):  # HF_HUB_OFFLINE was set when huggingface_hub was imported
        return offline_miss(source, cache)
    if isinstance(exc, GatedRepoError):
        return WeightsError(f"{source}: gated model; accept its terms at https://huggingface.co/{repo} with your "
                            f"account, then set HF_TOKEN to a read token of that account and pull again")
    if isinstance(exc, RepositoryNotFoundError):
        return WeightsError(f"{source}: repository {repo!r} not found on the Hub (404, or private: set HF_TOKEN); "
                            f"check the name (`medfit weights list` shows known sources)")
    if isinstance(exc, RevisionNotFoundError):
        return WeightsError(f"{source}: revision not found on the Hub; use the main branch")
    if _caused_by_disk_full(exc):
        return WeightsError(f"{source}: disk full while downloading into {cache}; free space there or set "
                            f"HF_HUB_CACHE to a larger disk")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return WeightsError(f"{source}: the Hub answered HTTP {exc.response.status_code} ({_first_line(exc)}); "
                            f"try again later, or pull on another machine and copy the folder")
    return WeightsError(f"{source}: cannot reach the Hugging Face Hub ({type(exc).__name__}: {_first_line(exc)}) and "
                        f"{repo} is not in the HF cache {cache}; check the network or proxy (HTTPS_PROXY, HF_ENDPOINT), "
                        f"or run `medfit weights pull {source} --to DIR` on a connected machine and copy DIR here")


def _caused_by_disk_full(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# --- reading weights -----------------------------------------------------------------------------------------------

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
        raise WeightsError(f"{path}: cannot read it as weights ({_first_line(exc)}); medfit reads safetensors or "
                           f"torch.save'd tensors (weights_only=True), never arbitrary pickles") from None
    except Exception as exc:  # noqa: BLE001  (pickle.UnpicklingError for a pickled object, not tensors)
        raise WeightsError(f"{path}: not a tensor file ({_first_line(exc)}); save the weights with "
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


def state_dict_of(resolved: ResolvedWeights) -> dict[str, torch.Tensor]:
    """The tensors of a resolved source (a run folder: its network with LoRA merged; xrv: its pickled module, safely)."""
    if resolved.kind == "run":
        from medfit.models.registry import load_network  # the registry builds backbones, which import this module

        return merge_lora(load_network(RunFolder(resolved.folder))).state_dict()
    if resolved.kind == "torchxrayvision" or _is_xrv_file(resolved.path):
        return read_torchxrayvision_file(resolved.path)
    return read_state_dict(resolved.path)


def _is_xrv_file(path: Path) -> bool:
    """torchxrayvision release files (copied by ``pull --to``) keep their release names."""
    return path.suffix == ".pt" and path.name.endswith(("-best.pt", "-state.pt")) and "densenet121" in path.name


def read_torchxrayvision_file(path: Path) -> dict[str, torch.Tensor]:
    """A torchxrayvision release file (a whole pickled DenseNet) read with weights_only=True.

    torchxrayvision's own loader calls torch.load(weights_only=False); here only the module classes of the DenseNet it
    builds are allowed, so the file cannot run code.
    """
    import torchxrayvision as xrv  # optional and heavy (scikit-image); only these files need it

    allowed = sorted({type(m) for m in xrv.models.DenseNet().modules()}, key=str)
    try:
        with torch.serialization.safe_globals(allowed + [set]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (UnpicklingError names the class the allowlist lacks)
        raise WeightsError(f"{path}: not a torchxrayvision DenseNet file medfit can read safely "
                           f"({_first_line(exc)}); use the release file torchxrayvision downloads") from None
    return unwrap_state_dict(obj.state_dict() if isinstance(obj, torch.nn.Module) else obj, path)


# --- normalisation -------------------------------------------------------------------------------------------------

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


# --- registry and pulling ------------------------------------------------------------------------------------------

def load_registry(path: Path = REGISTRY_FILE) -> list[dict]:
    """The weights medfit knows by name (medfit/models/weights_registry.yaml)."""
    return yaml.safe_load(path.read_text())["weights"]


def registry_entry(name: str) -> dict | None:
    """The registry entry called ``name`` (or whose source is ``name``), else None."""
    return next((e for e in load_registry() if name in (e["name"], e["source"])), None)


def pull(spec: str, to: str | Path | None = None, cache_dir: str | Path = "", offline: bool | None = None) -> dict:
    """Fill the HF cache with a source (and a registry entry's companion files); copy them to ``to`` with a manifest."""
    entry = registry_entry(spec)
    source = entry["source"] if entry else spec
    if source.startswith("hf-hub:"):
        hub_snapshot(source.removeprefix("hf-hub:"), source, cache_dir, offline, refresh=True)
    resolved = resolve_weights(source, cache_dir, offline, key="SOURCE")
    extras = [hub_snapshot(x["repo"], f"hf-hub:{x['repo']}", cache_dir, offline, x["files"]) / f
              for x in (entry or {}).get("also", []) for f in x["files"]]
    record = resolved.record()
    if to is not None:
        record = copy_with_manifest(resolved, extras, Path(to), record)
    return record


def copy_with_manifest(resolved: ResolvedWeights, extras: list[Path], to: Path, record: dict) -> dict:
    """Copy a source's files into ``to`` (links dereferenced) and write weights-manifest.json with their sha256."""
    if resolved.kind == "run":
        raise WeightsError(f"{resolved.source}: a run folder is already local; copy the folder itself")
    folder = resolved.folder if resolved.kind in ("hf-hub", "timm", "folder") else None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST) if folder else [resolved.path]
    to.mkdir(parents=True, exist_ok=True)
    try:
        for src in files + [x for x in extras if not (to / x.name).exists() and x.name not in {f.name for f in files}]:
            shutil.copyfile(src, to / src.name)
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else _first_line(exc)
        raise WeightsError(f"{to}: copying the weights failed ({reason}); free space or choose another --to") from None
    hashes = {p.name: sha256_file(p) for p in sorted(to.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**record, "files": hashes, "copied_to": str(to)}
    (to / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify(folder: str | Path) -> dict[str, str]:
    """Each file of a pulled folder: 'ok', 'changed' or 'missing' against its weights-manifest.json."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise WeightsError(f"{manifest}: no manifest; it is written by `medfit weights pull SOURCE --to {folder}`")
    expected = json.loads(manifest.read_text())["files"]
    return {name: ("missing" if not (folder / name).is_file() else
                   "ok" if sha256_file(folder / name) == digest else "changed") for name, digest in expected.items()}


def load_entry(entry: dict, cache_dir: str | Path = "", offline: bool | None = None) -> torch.nn.Module:
    """A registry entry's model, built by its own package's loader from local files (pulled first when online)."""
    resolved = resolve_weights(entry["source"], cache_dir, offline, key="SOURCE")
    for extra in entry.get("also", []):
        hub_snapshot(extra["repo"], f"hf-hub:{extra['repo']}", cache_dir, offline, extra["files"])
    loader = entry["loader"]
    if loader == "timm":
        from medfit.models.backbones import load_weights  # backbones imports this module

        arch = f"local-dir:{resolved.folder}" if (resolved.folder / "config.json").is_file() else resolved.timm_name
        model = timm.create_model(arch, num_classes=0)
        model.medfit_load_report = load_weights(model, resolved, 3, arch)
        return model.eval()
    if loader == "open_clip":
        from medfit.models.clip import load_open_clip  # open_clip is heavy; clip imports this module

        return load_open_clip(entry["source"], str(hub_cache(cache_dir)))[0]
    if loader == "transformers":
        return _load_transformers(resolved, entry.get("auto_class", "AutoModel"))
    if loader == "torchxrayvision":
        return _load_torchxrayvision(resolved)
    raise WeightsError(f"{REGISTRY_FILE}: entry {entry['name']!r} has unknown loader {loader!r}")


def _load_transformers(resolved: ResolvedWeights, auto_class: str) -> torch.nn.Module:
    import transformers  # heavy; only transformers entries need it

    try:
        return getattr(transformers, auto_class).from_pretrained(resolved.folder, local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{resolved.source}: transformers cannot load {resolved.folder} ({_first_line(exc)}); "
                           f"pull it again (`medfit weights pull {resolved.source}`)") from None


def _load_torchxrayvision(resolved: ResolvedWeights) -> torch.nn.Module:
    """torchxrayvision's DenseNet with the release weights read safely, labelled as its own constructor labels it."""
    import torchxrayvision as xrv  # optional and heavy (scikit-image)

    info = xrv.models.model_urls[resolved.source.removeprefix("torchxrayvision:")]
    model = xrv.models.DenseNet(num_classes=len(info["labels"]))  # the architecture; weights=None downloads nothing
    model.load_state_dict(read_torchxrayvision_file(resolved.path))
    model.targets = model.pathologies = info["labels"]
    model.op_threshs = torch.tensor(info["op_threshs"]) if "op_threshs" in info else None
    model.input_resolution = info.get("input_resolution", 224)
    return model.eval()
