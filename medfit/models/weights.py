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
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import yaml

from medfit.errors import WeightsError
from medfit.models.finetune import merge_lora
from medfit.models.hub import (  # noqa: F401  (re-exported: medfit.models.weights is the weights API)
    CONFIG_FILES,
    SHARD_INDEXES,
    WEIGHT_FILES,
    WEIGHT_SUFFIXES,
    cached_snapshot,
    first_line,
    hub_cache,
    hub_error,
    hub_snapshot,
    is_offline,
    repo_files,
)
from medfit.models.state_dicts import (  # noqa: F401  (re-exported)
    MANIFEST,
    is_xrv_file,
    normalisation_of,
    read_state_dict,
    read_torchxrayvision_file,
    strip_prefix,
    unwrap_state_dict,
)
from medfit.run_folder import RunFolder

log = logging.getLogger(__name__)

SCHEMES = ("timm:", "hf-hub:", "torchxrayvision:")
SOURCE_HELP = ("a weight file, a folder, a medfit run folder, timm:NAME (e.g. timm:resnet18.a1_in1k), "
               "hf-hub:ORG/REPO or torchxrayvision:WEIGHTS")
REGISTRY_FILE = Path(__file__).with_name("weights_registry.yaml")


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
            raise WeightsError(f"{spec}: download of {url} into {path.parent} failed ({first_line(exc)}); check the "
                               f"network, or download the file there by hand") from None
    return ResolvedWeights(spec, "torchxrayvision", path, path.parent)


def state_dict_of(resolved: ResolvedWeights) -> dict[str, torch.Tensor]:
    """The tensors of a resolved source (a run folder: its network with LoRA merged; xrv: its pickled module, safely)."""
    if resolved.kind == "run":
        from medfit.models.registry import load_network  # the registry builds backbones, which import this module

        return merge_lora(load_network(RunFolder(resolved.folder))).state_dict()
    if resolved.kind == "torchxrayvision" or is_xrv_file(resolved.path):
        return read_torchxrayvision_file(resolved.path)
    return read_state_dict(resolved.path)


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
        reason = "disk full" if exc.errno == errno.ENOSPC else first_line(exc)
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
        raise WeightsError(f"{resolved.source}: transformers cannot load {resolved.folder} ({first_line(exc)}); "
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
