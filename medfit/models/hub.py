"""The Hugging Face hub cache for weight sources: cached snapshots, downloads with a deadline, one-line errors."""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from medfit.errors import WeightsError

log = logging.getLogger(__name__)
# Single-file weights a folder may hold, in order of preference (timm, transformers, open_clip names).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
CONFIG_FILES = ("config.json", "open_clip_config.json", "preprocessor_config.json")
METADATA_SUFFIXES = (".json", ".txt", ".model", ".jinja")  # configs, processors, tokenizers, chat templates
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
TIMEOUT_S = 10.0  # the repo listing's deadline (huggingface_hub's API calls wait forever unless given one)


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
    if caused_by_disk_full(exc):
        return WeightsError(f"{source}: disk full while downloading into {cache}; free space there or set "
                            f"HF_HUB_CACHE to a larger disk")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return WeightsError(f"{source}: the Hub answered HTTP {exc.response.status_code} ({first_line(exc)}); "
                            f"try again later, or pull on another machine and copy the folder")
    return WeightsError(f"{source}: cannot reach the Hugging Face Hub ({type(exc).__name__}: {first_line(exc)}) and "
                        f"{repo} is not in the HF cache {cache}; check the network or proxy (HTTPS_PROXY, HF_ENDPOINT), "
                        f"or run `medfit weights pull {source} --to DIR` on a connected machine and copy DIR here")


def caused_by_disk_full(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
