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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import medfit
from medfit.audit.cache import FingerprintCache, near_pairs_path
from medfit.audit.duplicates import (
    NEAR_SIMILARITY,
    aligned_views,
    differing_pairs,
    direct_neighbours,
    duplicate_clusters,
    near_pairs,
    view_similarity,
)
from medfit.audit.fingerprint import (
    HASH_PARAMS,
    SIMILARITY_PARAMS,
    fingerprint,
    fingerprint_many,
    grey_float,
    similarity_base,
    similarity_view,
    unpack_phash,
)
from medfit.audit.leaks import id_leaks, id_table
from medfit.audit.result import AuditError, AuditResult
from medfit.audit.shortcuts import shortcut_signals
from medfit.config import AuditConfig
from medfit.data.corrections import reviewed_mask
from medfit.errors import DataError
from medfit.io import read_image
from medfit.run_folder import FILES, Folder

if TYPE_CHECKING:  # a Dask client costs a second to import; only `--workers`/`--cluster` runs bring one
    from medfit.preprocess.cluster import Cluster

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


def compute_fingerprints(refs: list[str], cache_dir: str | Path | None = None, workers: int = 0,
                         cluster: Cluster | None = None) -> pd.DataFrame:
    """Fingerprint every image (cached by content + hash parameters + medfit version); one row per ref; with a Dask
    ``cluster``, the images not cached are fingerprinted on its workers."""
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
        if cluster is not None:
            for i, rec in zip(todo, fingerprints_on(cluster, [refs[i] for i in todo])):
                records[i] = rec
        elif n_workers > 1:
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


def fingerprints_on(cluster: Cluster, refs: list[str]) -> list[dict]:
    """Fingerprints computed on a Dask cluster; images that fail stop the audit with one line naming them."""
    records, failures = cluster.map(fingerprint, refs, refs, desc="fingerprints")
    if failures:
        raise DataError(f"audit: {cluster.failures_line(failures, len(refs))}; fix or drop them from the manifest")
    return records


def check_pixels(records: pd.DataFrame, refs: list[str]) -> None:
    """Refuse images without a single finite pixel (all NaN/inf), naming the first few and the count."""
    if "no_pixels" not in records.columns:
        return
    bad = [str(refs[i]) for i in np.flatnonzero(records["no_pixels"].fillna(False).astype(bool).to_numpy())]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DataError(f"{len(bad)} image(s) hold no finite pixel (all NaN/inf): {', '.join(bad[:3])}{more}; "
                        "fix the export or drop them from the manifest")


def verify_pairs(pairs: list[tuple[int, int, int]], refs: list[str], pixel_hashes: list[str],
                 phashes: list[str]) -> list[tuple[int, int, int, float]]:
    """Second check of candidate pairs: (i, j, distance, similarity); identical pixels score 1.0, others are read
    again (once per image) and compared as aligned thumbnails (``duplicates.view_similarity``)."""
    bases: dict[int, np.ndarray] = {}

    def base(i: int) -> np.ndarray:
        if i not in bases:
            bases[i] = similarity_base(grey_float(read_image(refs[i])))
        return bases[i]

    out = []
    for i, j, d in pairs:
        if pixel_hashes[i] == pixel_hashes[j]:
            out.append((i, j, d, 1.0))
            continue
        views = aligned_views(unpack_phash(phashes[i]), unpack_phash(phashes[j]))
        sim = max(view_similarity(similarity_view(base(i), va), similarity_view(base(j), vb)) for va, vb in views)
        out.append((i, j, d, sim))
    return out


def cached_near_pairs(phashes: list[str], threshold: int, cache_dir: str | Path | None, refs: list[str] | None = None,
                      pixel_hashes: list[str] | None = None) -> list[tuple]:
    """Near-duplicate candidate pairs of these hashes, (i, j, distance), or with ``refs`` and ``pixel_hashes``
    verified pairs (i, j, distance, similarity); the quadratic search and the checks are cached beside the
    fingerprints."""
    path = None
    if cache_dir and phashes:
        params = {"hash": HASH_PARAMS, "threshold": threshold, "medfit": medfit.__version__,
                  "similarity": SIMILARITY_PARAMS if refs is not None else None}
        path = near_pairs_path(cache_dir, list(phashes) + list(pixel_hashes or []), params)
        if path.is_file():
            try:
                return [tuple(p) for p in json.loads(path.read_text())]
            except (OSError, ValueError) as exc:
                log.warning("near-duplicate cache %s is unreadable (%s); recomputing it", path, exc)
    pairs = near_pairs(np.stack([unpack_phash(h) for h in phashes]), threshold) if len(phashes) > 1 else []
    if refs is not None:
        pairs = verify_pairs(pairs, refs, pixel_hashes, phashes)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(pairs))
        os.replace(tmp, path)
    return pairs


REGION_COLUMNS = ("slice_index", "roi_label", "mask")


def without_same_file_regions(clusters: list[dict], df: pd.DataFrame) -> list[dict]:
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


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _evidence(df: pd.DataFrame, labels: list, found: list[tuple], limit: int = 3) -> list[dict]:
    """The first direct pairs of a finding as plain data: both images, their splits and labels, distance, similarity."""
    return [{"images": [str(df.at[a, "image"]), str(df.at[b, "image"])],
             "splits": [str(df.at[a, "split"]), str(df.at[b, "split"])],
             "labels": [_plain(labels[a]), _plain(labels[b])], "distance": int(d), "similarity": float(s)}
            for a, b, d, s in found[:limit]]


def _describe_clusters(clusters: list[dict], df: pd.DataFrame, labels: list, removed: set[int],
                       pixel: list[str]) -> list[dict]:
    """Add images, splits, labels and the leak/conflict flags, each judged on direct pairs of members not removed
    (``duplicates.differing_pairs``) and shown with that evidence."""
    splits = df["split"].astype(str).tolist()
    out = []
    for k, c in enumerate(clusters):
        members = c["members"]
        keep = {m for m in members if m not in removed}
        leak = differing_pairs(members, c.get("pairs", []), pixel, splits, keep)
        conflict = differing_pairs(members, c.get("pairs", []), pixel, labels, keep)
        out.append({
            "id": k, "kind": c["kind"], "max_distance": c["max_distance"],
            "images": [str(df.at[m, "image"]) for m in members],
            "splits": [splits[m] for m in members],
            "labels": [_plain(labels[m]) for m in members],
            "removed": [str(df.at[m, "image"]) for m in members if m in removed],
            "kept": len(keep),
            "cross_split": bool(leak), "conflict": bool(conflict),
            "leak_pairs": _evidence(df, labels, leak), "conflict_pairs": _evidence(df, labels, conflict),
            "rows": members,
        })
    return out


def _dedupe(df: pd.DataFrame, clusters: list[dict], leaks: list[dict], labels: list, pixel: list[str]) -> dict[int, str]:
    """Rows to drop -> reason: each image with a direct copy (or the same id) in a more held-out split, then the
    training-side images of direct copies whose labels still disagree. Chains never remove anything: an image goes
    only for a copy of its own."""
    removed: dict[int, str] = {}
    rank = {m: _split_rank(s) for m, s in enumerate(df["split"].astype(str))}
    for c in clusters:
        for m, near in direct_neighbours(c["members"], c.get("pairs", []), pixel).items():
            keeper = max(near, key=lambda n: (rank[n], -n), default=None)
            if keeper is not None and rank[keeper] > rank[m]:
                kind = "exact" if pixel[keeper] == pixel[m] else "near"
                removed.setdefault(m, f"{kind} duplicate of {df.at[keeper, 'image']} ({df.at[keeper, 'split']})")
    for leak in leaks:
        top = max(rank[r] for r in leak["rows"])
        keeper = next(r for r in leak["rows"] if rank[r] == top)
        for r in leak["rows"]:
            if rank[r] < top:
                removed.setdefault(r, f"same {leak['kind']} id {leak['id']} as {df.at[keeper, 'image']} "
                                      f"({df.at[keeper, 'split']})")
    for c in clusters:
        keep = {m for m in c["members"] if m not in removed}
        for a, b, *_ in differing_pairs(c["members"], c.get("pairs", []), pixel, labels, keep):
            for m in (a, b):
                same = [n for n in keep if pixel[n] == pixel[m]]
                for n in same:
                    if rank[n] < 2:
                        removed[n] = f"{c['kind']} duplicate with a different label ({df.at[b if m == a else a, 'image']})"
    return removed


def removal_kind(reason: str) -> str:
    """The reason of one removal in three words: copy of a held-out image, same id, label conflict."""
    if "different label" in reason:
        return "label conflict"
    return "same id in a held-out split" if reason.startswith("same ") else "copy of a held-out image"


def removal_counts(df: pd.DataFrame, removed: dict[int, str], label_columns: list[str],
                   class_names: list[str]) -> dict:
    """What dedupe removed: per class (removed of all, share), per split and per reason."""
    if not removed:
        return {}
    rows = sorted(removed)
    out = {"total": len(rows), "by_split": df.loc[rows, "split"].astype(str).value_counts().to_dict()}
    kinds = pd.Series([removal_kind(removed[r]) for r in rows])
    out["by_reason"] = {str(k): int(v) for k, v in kinds.value_counts().items()}
    if len(label_columns) == 1:
        names = lambda v: class_names[int(v)] if class_names and str(v).lstrip("-").isdigit() and int(v) < len(class_names) else str(v)
        total = df[label_columns[0]].map(names).value_counts()
        gone = df.loc[rows, label_columns[0]].map(names).value_counts()
        out["by_class"] = {str(k): {"removed": int(gone.get(k, 0)), "of": int(n), "share": round(gone.get(k, 0) / n, 4)}
                           for k, n in total.items()}
    return out


def finding_counts(clusters: list[dict], id_leaks: list[dict]) -> dict:
    """Counts of one set of described clusters: groups spanning splits, conflicts, within-split groups and copies."""
    within = [c for c in clusters if c["kept"] > 1 and not c["cross_split"] and not c["conflict"]]
    return {"span_splits": sum(c["cross_split"] for c in clusters), "conflicts": sum(c["conflict"] for c in clusters),
            "id_leaks": len(id_leaks), "within_split_groups": len(within),
            "within_split_extra": sum(c["kept"] - 1 for c in within)}


def audit_manifest(df: pd.DataFrame, label_columns: list[str], class_names: list[str] | None = None,
                   task: str = "binary", cfg: AuditConfig | None = None, cache_dir: str | Path | None = None,
                   seed: int = 0, cluster: Cluster | None = None) -> AuditResult:
    """Audit a manifest table (columns image, label column(s), patient_id, site, split; optional study/series/sop
    uids); with ``cfg.dedupe`` the result's ``kept`` rows drop the training-side copies. Never raises on findings."""
    cfg = cfg or AuditConfig()
    df = df.reset_index(drop=True)
    missing = [c for c in ["image", "split", *label_columns] if c not in df.columns]
    if missing:
        raise DataError(f"manifest for the audit lacks columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise DataError("the manifest has no images to audit; check data.root and the importer's folder layout")
    timing = {}
    t0 = time.perf_counter()
    refs = df["image"].astype(str).tolist()
    records = compute_fingerprints(refs, cache_dir, cfg.workers, cluster)
    check_pixels(records, refs)
    timing["fingerprints_s"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    pixel = records["pixel_hash"].tolist()
    candidates = (cached_near_pairs(records["phash"].tolist(), cfg.near_threshold, cache_dir, refs, pixel)
                  if cfg.near_duplicates else [])
    raw_clusters, pairs = duplicate_clusters(pixel, None, cfg.near_threshold, candidates)
    raw_clusters = without_same_file_regions(raw_clusters, df)
    reviewed_rows = set(np.flatnonzero(reviewed_mask(df).to_numpy()).tolist())
    reviewed = [c for c in raw_clusters if set(c["members"]) <= reviewed_rows]  # a reviewer kept every image
    raw_clusters = [c for c in raw_clusters if not set(c["members"]) <= reviewed_rows]
    timing["duplicates_s"] = round(time.perf_counter() - t1, 3)

    labels = _label_values(df, label_columns)
    ids = id_table(df, records)
    leaks = id_leaks(df, ids)
    removed = _dedupe(df, raw_clusters, leaks, labels, pixel) if cfg.dedupe else {}
    before = finding_counts(_describe_clusters(raw_clusters, df, labels, set(), pixel), leaks) if removed else None
    clusters = _describe_clusters(raw_clusters, df, labels, set(removed), pixel)
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

    after = finding_counts(clusters, [leak for leak in leaks if not leak["resolved"]])
    warnings = list(shortcuts["warnings"])
    if after["within_split_groups"]:
        warnings.append(f"{after['within_split_groups']} group(s) of duplicate images within one split "
                        f"({after['within_split_extra']} extra copies): those images weigh more in training and in "
                        "the metrics")
    counts = removal_counts(df, removed, label_columns, list(class_names or []))
    heavy = {k: v for k, v in counts.get("by_class", {}).items() if v["share"] >= 0.2}
    if heavy:
        warnings.append("dedupe removed " + ", ".join(f"{v['share']:.0%} of class {k!r} ({v['removed']} of {v['of']})"
                                                      for k, v in heavy.items())
                        + f": check the removed list ({FILES['audit_removed']}) before training on what is left")
    kept = df.drop(index=sorted(removed)).reset_index(drop=True) if removed else df
    removed_rows = [{"image": str(df.at[r, "image"]), "split": str(df.at[r, "split"]),
                     "label": _plain(labels[r]), "reason": why} for r, why in sorted(removed.items())]
    checked = [p for p in candidates if len(p) > 3 and pixel[p[0]] != pixel[p[1]]]
    rejected = sorted((p for p in checked if p[3] < NEAR_SIMILARITY), key=lambda p: -p[3])
    near_check = {"candidates": len(checked), "accepted": len(checked) - len(rejected), "rejected": len(rejected),
                  "min_similarity": NEAR_SIMILARITY,
                  "closest_rejected": [{"images": [refs[i], refs[j]], "distance": int(d), "similarity": float(s)}
                                       for i, j, d, s in rejected[:5]]}
    return AuditResult(images=len(df), clusters=clusters, id_leaks=leaks, shortcuts=shortcuts, warnings=warnings,
                       removed=removed_rows, kept=kept, timing=timing, near_threshold=cfg.near_threshold,
                       before=before, after=after, removed_counts=counts, near_check=near_check,
                       reviewed=[{"kind": c["kind"], "images": [refs[m] for m in c["members"]],
                                  "splits": [str(df.at[m, "split"]) for m in c["members"]],
                                  "labels": [_plain(labels[m]) for m in c["members"]]} for c in reviewed])


def audit_cache_dir(cfg) -> Path:
    """Where fingerprints are cached: audit.cache_dir, else <preprocess cache dir or <output_dir>/.cache>/audit."""
    if cfg.audit.cache_dir:
        return Path(cfg.audit.cache_dir)
    return Path(cfg.preprocess.cache_dir or Path(cfg.output_dir) / ".cache") / "audit"


def run_audit(cfg, manifest, folder: Folder | None, log_findings: bool = True,
              cluster: Cluster | None = None) -> AuditResult:
    """Audit the experiment's manifest before training: write the audit into ``folder`` (a run or study folder), log
    the summary line and warnings, or raise AuditError (carrying them) on leaks and label conflicts unless
    ``audit.dedupe`` removed them.
    ``result.manifest`` is the manifest to train on (training-side copies dropped when deduping)."""
    if not cfg.audit.enabled:
        result = AuditResult(images=len(manifest.df), kept=manifest.df, skipped=True)
        result.manifest = manifest
        return result
    result = audit_manifest(manifest.df, list(manifest.label_columns), list(manifest.class_names), manifest.task,
                            cfg.audit, audit_cache_dir(cfg), cfg.seed, cluster)
    result.manifest = dataclasses.replace(manifest, df=result.kept) if result.removed else manifest
    json_path = result.write(folder) if folder is not None else None
    if not result.ok:  # the error carries the summary and warnings: whoever reports it shows the whole audit
        raise AuditError(result, json_path)
    if log_findings:
        log.info("%s", result.summary)
        for text in result.warnings:
            log.warning("%s", text)
    return result
