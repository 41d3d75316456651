"""Pretrained weights: list the known ones, pull them into the HF cache or a folder, verify a pulled folder."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import timm

from medfit.config import ExperimentConfig, load_config
from medfit.errors import WeightsError
from medfit.models.weights import (MANIFEST, SCHEMES, SOURCE_HELP, cached_snapshot, load_registry, pull,
                                   resolve_local, verify)



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medfit weights``: list | pull | verify."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="known weights: source, licence, size, input, mean/std, 1-channel adaptation, cached")
    p = sub.add_parser("pull", help="fetch weights into the Hugging Face cache, or copy them to --to DIR")
    p.add_argument("source", nargs="?", help=f"{SOURCE_HELP}, or a name from `medfit weights list`")
    p.add_argument("--config", help="pull every weight source this experiment config names")
    p.add_argument("--to", help="also copy the files here with weights-manifest.json (for an offline machine)")
    p.add_argument("--offline", action="store_true", default=None, help="use the HF cache only (as HF_HUB_OFFLINE=1)")
    p.add_argument("--cache-dir", default="", help="HF cache (default: $HF_HUB_CACHE, else ~/.cache/huggingface/hub)")
    v = sub.add_parser("verify", help="check a pulled folder's files against its weights-manifest.json (sha256)")
    v.add_argument("folder")


def run(args: argparse.Namespace) -> int:
    """Run ``medfit weights ACTION``."""
    return {"list": run_list, "pull": run_pull, "verify": run_verify}[args.action](args)


def run_list(args: argparse.Namespace) -> int:
    """Print the registry as a table."""
    header = ["name", "source", "loader", "licence", "size", "input", "mean / std", "1-channel input", "cached"]
    rows = [[e["name"], e["source"] + (" (gated)" if e.get("gated") else ""), e["loader"], e["licence"],
             f"{e['size_mb']} MB", f"{e['channels']}x{e['size']}", f"{_short(e['mean'])} / {_short(e['std'])}",
             e["one_channel"], "yes" if is_cached(e["source"]) else "no"] for e in load_registry()]
    print(format_table(header, rows))
    print("\nuse: medfit weights pull NAME [--to DIR]; each entry's config keys: see medfit/models/weights_registry.yaml")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    """Pull one source, or every source a config names."""
    if bool(args.source) == bool(args.config):
        raise WeightsError("medfit weights pull: give a SOURCE or --config CONFIG (one of them)")
    sources = config_sources(load_config(args.config)) if args.config else [args.source]
    if not sources:
        print(f"{args.config}: names no pretrained weights (model.pretrained is empty, no hub model)")
    for source in sources:
        if not source.startswith(SCHEMES) and registry_name(source) is None:
            print(f"{source}: local, {resolve_local(source).path}")  # raises when it is missing
            continue
        to = _destination(args.to, source, per_source=bool(args.config))
        record = pull(source, to, args.cache_dir, args.offline)
        where = to or Path(record["file"]).parent
        rev = f", revision {record['revision'][:12]}" if record.get("revision") else ""
        print(f"{source}: {where}{rev}, {len(record['files'])} file(s)")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Compare a pulled folder with its manifest; exit 1 when a file changed or is missing."""
    status = verify(args.folder)
    for name, state in status.items():
        print(f"{state:8} {name}")
    bad = [n for n, s in status.items() if s != "ok"]
    if bad:
        raise WeightsError(f"{Path(args.folder) / MANIFEST}: {len(bad)} of {len(status)} files changed or missing "
                           f"({', '.join(bad[:3])}); pull them again")
    print(f"{len(status)} files match {MANIFEST}")
    return 0


def config_sources(cfg: ExperimentConfig) -> list[str]:
    """Every weight source an experiment config names (model, fusion members, CLIP model, VLM)."""
    m = cfg.model
    sources = [m.pretrained, m.name if m.name.startswith("hf-hub:") else ""]
    sources += [f.pretrained for f in m.fusion.members]
    if m.kind in ("open_clip", "clip_zero_shot"):
        sources.append(m.clip.source.removeprefix("local-dir:"))
    sources.append(cfg.vlm.model)  # the same source syntax (medfit.models.weights)
    return list(dict.fromkeys(s for s in sources if s))


def registry_name(source: str) -> str | None:
    """The registry name a source is known by, else None."""
    return next((e["name"] for e in load_registry() if source in (e["name"], e["source"])), None)


def is_cached(source: str) -> bool:
    """Whether a hub source's snapshot is in the HF cache (no network)."""
    if source.startswith("timm:"):
        cfg = timm.models.get_pretrained_cfg(source.removeprefix("timm:"))
        return bool(cfg and cfg.hf_hub_id and cached_snapshot(cfg.hf_hub_id))
    if source.startswith("hf-hub:"):
        return cached_snapshot(source.removeprefix("hf-hub:")) is not None
    if source.startswith("torchxrayvision:"):
        import torchxrayvision as xrv  # optional and heavy (scikit-image)

        url = xrv.models.model_urls[source.removeprefix("torchxrayvision:")]["weights_url"]
        return (Path(xrv.utils.get_cache_dir()) / Path(url).name).is_file()
    return Path(source).expanduser().exists()


def _destination(to: str | None, source: str, per_source: bool) -> Path | None:
    """--to itself for one SOURCE; with --config, a sub-folder named after each source."""
    if not to:
        return None
    return Path(to) / re.sub(r"[^\w.-]+", "_", source).strip("_") if per_source else Path(to)


def _short(values: list) -> str:
    return ",".join(f"{v:.3g}" for v in values)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])
