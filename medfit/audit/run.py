"""Audit a manifest: fingerprints (cached, in parallel), duplicate groups, id leaks, shortcut signals, the dedupe policy."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

import medfit
from medfit.audit.cache import FingerprintCache, near_pairs_path
from medfit.audit.duplicates import duplicate_clusters, near_pairs
from medfit.audit.fingerprint import HASH_PARAMS, fingerprint_many, unpack_phash
from medfit.audit.leaks import id_leaks, id_table
from medfit.audit.result import AuditResult
from medfit.audit.shortcuts import shortcut_signals
from medfit.config import AuditConfig
from medfit.errors import DataError
from medfit.run_folder import Folder

log = logging.getLogger(__name__)

POOL_MIN_IMAGES = 400  # below this, starting worker processes costs more than it saves
# dedupe keeps the copy in the split that is most "held out": train < val < test/external/anything else
SPLIT_RANK = {"train": 0, "val": 1}


def _split_rank(split: str) -> int:
    return SPLIT_RANK.get(str(split), 2)


def _workers(requested: int, n: int) -> int:
    if n < POOL_MIN_IMAGES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, requested or min(4, cores))


def compute_fingerprints(refs: list[str], cache_dir: str | Path | None = None, workers: int = 0) -> pd.DataFrame:
    """Fingerprint every image (cached by content + hash parameters + medfit version); one row per ref."""
    refs = [str(r) for r in refs]
    cache = FingerprintCache(cache_dir) if cache_dir else None
    keys: list[str | None] = [None] * len(refs)
    records: list[dict | None] = [None] * len(refs)
    if cache is not None:
        for i, ref in enumerate(refs):
            try:
                keys[i] = cache.key(ref, HASH_PARAMS)
            except FileNotFoundError:
                raise DataError(f"{ref}: image file not found; check the manifest path") from None
            records[i] = cache.get(keys[i])
    todo = [i for i, r in enumerate(records) if r is None]
    if todo:
        n_workers = _workers(workers, len(todo))
        chunks = [todo[k:k + 64] for k in range(0, len(todo), 64)]
        if n_workers > 1:
            # fork, like torch's DataLoader workers: spawn would demand a __main__ guard in every user script
            method = "fork" if os.name == "posix" and sys.platform != "darwin" else "spawn"
            with ProcessPoolExecutor(n_workers, mp_context=get_context(method)) as pool:
                results = pool.map(fingerprint_many, [[refs[i] for i in chunk] for chunk in chunks])
                for chunk, recs in zip(chunks, results):
                    for i, rec in zip(chunk, recs):
                        records[i] = rec
        else:
            for chunk in chunks:
                for i, rec in zip(chunk, fingerprint_many([refs[i] for i in chunk])):
                    records[i] = rec
        if cache is not None:
            for i in todo:
                cache.put(keys[i], records[i])
            cache.save()
    return pd.DataFrame(records)


def cached_near_pairs(phashes: list[str], threshold: int, cache_dir: str | Path | None) -> list[tuple[int, int, int]]:
    """Near-duplicate pairs of these hashes; the quadratic search is cached beside the fingerprints."""
    path = None
    if cache_dir and phashes:
        params = {"hash": HASH_PARAMS, "threshold": threshold, "medfit": medfit.__version__}
        path = near_pairs_path(cache_dir, phashes, params)
        if path.is_file():
            try:
                return [tuple(p) for p in json.loads(path.read_text())]
            except (OSError, ValueError) as exc:
                log.warning("near-duplicate cache %s is unreadable (%s); recomputing it", path, exc)
    pairs = near_pairs(np.stack([unpack_phash(h) for h in phashes]), threshold) if len(phashes) > 1 else []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(pairs))
        os.replace(tmp, path)
    return pairs


REGION_COLUMNS = ("slice_index", "roi_label", "mask")


def _without_same_file_regions(clusters: list[dict], df: pd.DataFrame) -> list[dict]:
    """Drop groups made only of rows that name one file (study rows: other slices or ROI labels of one volume are
    not copies of each other; a study in two splits is caught by the patient/study id check)."""
    if not any(c in df.columns for c in REGION_COLUMNS):
        return clusters
    refs = df["image"].astype(str).to_numpy()
    return [c for c in clusters if len({refs[m] for m in c["members"]}) > 1]


def _label_values(df: pd.DataFrame, label_columns: list[str]) -> list:
    if len(label_columns) == 1:
        return df[label_columns[0]].tolist()
    return [tuple(row) for row in df[label_columns].itertuples(index=False)]


def _describe_clusters(clusters: list[dict], df: pd.DataFrame, labels: list, removed: set[int]) -> list[dict]:
    """Add images, splits, labels and the leak/conflict flags (judged on the members not removed)."""
    out = []
    for k, c in enumerate(clusters):
        members = c["members"]
        left = [m for m in members if m not in removed]
        out.append({
            "id": k, "kind": c["kind"], "max_distance": c["max_distance"],
            "images": [str(df.at[m, "image"]) for m in members],
            "splits": [str(df.at[m, "split"]) for m in members],
            "labels": [labels[m] if not isinstance(labels[m], np.generic) else labels[m].item() for m in members],
            "removed": [str(df.at[m, "image"]) for m in members if m in removed],
            "cross_split": len({df.at[m, "split"] for m in left}) > 1,
            "conflict": len({str(labels[m]) for m in left}) > 1,
            "rows": members,
        })
    return out


def _dedupe(df: pd.DataFrame, clusters: list[dict], leaks: list[dict], labels: list) -> dict[int, str]:
    """Rows to drop -> reason: the lower-ranked split's members of each cross-split group or leaked id, then the
    training-side members of groups whose labels still disagree."""
    removed: dict[int, str] = {}
    groups = [(c["members"], f"{c['kind']} duplicate of") for c in clusters]
    groups += [(leak["rows"], f"same {leak['kind']} id {leak['id']} as") for leak in leaks]
    for members, reason in groups:
        ranks = {m: _split_rank(df.at[m, "split"]) for m in members}
        if len(set(df.loc[members, "split"])) < 2:
            continue
        top = max(ranks.values())
        keeper = next(m for m in members if ranks[m] == top)
        for m in members:
            if ranks[m] < top:
                removed.setdefault(m, f"{reason} {df.at[keeper, 'image']} ({df.at[keeper, 'split']})")
    for c in clusters:
        left = [m for m in c["members"] if m not in removed]
        if len({str(labels[m]) for m in left}) > 1:
            for m in left:
                if _split_rank(df.at[m, "split"]) < 2:
                    removed[m] = f"{c['kind']} duplicate with a different label"
    return removed


def audit_manifest(df: pd.DataFrame, label_columns: list[str], class_names: list[str] | None = None,
                   task: str = "binary", cfg: AuditConfig | None = None, cache_dir: str | Path | None = None,
                   seed: int = 0) -> AuditResult:
    """Audit a manifest table (columns image, label column(s), patient_id, site, split; optional study/series/sop
    uids); with ``cfg.dedupe`` the result's ``kept`` rows drop the training-side copies. Never raises on findings."""
    cfg = cfg or AuditConfig()
    df = df.reset_index(drop=True)
    missing = [c for c in ["image", "split", *label_columns] if c not in df.columns]
    if missing:
        raise DataError(f"manifest for the audit lacks columns {missing}; it has {list(df.columns)}")
    timing = {}
    t0 = time.perf_counter()
    records = compute_fingerprints(df["image"].tolist(), cache_dir, cfg.workers)
    timing["fingerprints_s"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    pairs = cached_near_pairs(records["phash"].tolist(), cfg.near_threshold, cache_dir) if cfg.near_duplicates else []
    raw_clusters, pairs = duplicate_clusters(records["pixel_hash"].tolist(), None, cfg.near_threshold, pairs)
    raw_clusters = _without_same_file_regions(raw_clusters, df)
    timing["duplicates_s"] = round(time.perf_counter() - t1, 3)

    labels = _label_values(df, label_columns)
    ids = id_table(df, records)
    leaks = id_leaks(df, ids)
    removed = _dedupe(df, raw_clusters, leaks, labels) if cfg.dedupe else {}
    clusters = _describe_clusters(raw_clusters, df, labels, set(removed))
    for leak in leaks:
        leak["images"] = [str(df.at[r, "image"]) for r in leak["rows"]]
        left = {df.at[r, "split"] for r in leak["rows"] if r not in removed}
        leak["resolved"] = len(left) < 2

    t2 = time.perf_counter()
    features = records.copy()
    features["site"] = df["site"].astype(str) if "site" in df.columns else ""
    shortcuts = shortcut_signals(features, df[label_columns], list(class_names or []), task, cfg.shortcut_auc, seed)
    timing["shortcuts_s"] = round(time.perf_counter() - t2, 3)
    timing["total_s"] = round(time.perf_counter() - t0, 3)

    warnings = list(shortcuts["warnings"])
    within = [c for c in clusters if not c["cross_split"] and not c["conflict"]]
    if within:
        extra = sum(len(c["images"]) - 1 for c in within)
        warnings.append(f"{len(within)} group(s) of duplicate images within one split ({extra} extra copies): "
                        "those images weigh more in training and in the metrics")
    kept = df.drop(index=sorted(removed)).reset_index(drop=True) if removed else df
    removed_rows = [{"image": str(df.at[r, "image"]), "split": str(df.at[r, "split"]), "reason": why}
                    for r, why in sorted(removed.items())]
    return AuditResult(images=len(df), clusters=clusters, id_leaks=leaks, shortcuts=shortcuts, warnings=warnings,
                       removed=removed_rows, kept=kept, timing=timing, near_threshold=cfg.near_threshold)


def audit_cache_dir(cfg) -> Path:
    """Where fingerprints are cached: audit.cache_dir, else <preprocess cache dir or <output_dir>/.cache>/audit."""
    if cfg.audit.cache_dir:
        return Path(cfg.audit.cache_dir)
    return Path(cfg.preprocess.cache_dir or Path(cfg.output_dir) / ".cache") / "audit"


def run_audit(cfg, manifest, folder: Folder | None, log_findings: bool = True) -> AuditResult:
    """Audit the experiment's manifest before training: write the audit into ``folder`` (a run or study folder), log
    the summary line, and raise DataError on leaks and label conflicts unless ``audit.dedupe`` removed them.
    ``result.manifest`` is the manifest to train on (training-side copies dropped when deduping)."""
    if not cfg.audit.enabled:
        result = AuditResult(images=len(manifest.df), kept=manifest.df, skipped=True)
        result.manifest = manifest
        return result
    result = audit_manifest(manifest.df, list(manifest.label_columns), list(manifest.class_names), manifest.task,
                            cfg.audit, audit_cache_dir(cfg), cfg.seed)
    result.manifest = dataclasses.replace(manifest, df=result.kept) if result.removed else manifest
    json_path = result.write(folder) if folder is not None else None
    if log_findings:
        log.info("%s", result.summary)
        for text in result.warnings:
            log.warning("%s", text)
    if not result.ok:
        raise DataError(result.error_message(json_path))
    return result
