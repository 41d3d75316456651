"""The unit a split draw keeps whole: each patient merged with every group of duplicate images it touches (exact
copies and verified near-duplicates, from the audit's cached fingerprints), so no copy straddles train and val."""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medfit.audit.duplicates import UnionFind, duplicate_clusters
from medfit.audit.run import (
    without_same_file_regions,
    audit_cache_dir,
    cached_near_pairs,
    check_pixels,
    compute_fingerprints,
)
from medfit.config import AuditConfig
from medfit.errors import DataError
from medfit.io import read_image

if TYPE_CHECKING:
    from medfit.preprocess.cluster import Cluster


def duplicate_groups(df: pd.DataFrame, cfg: AuditConfig | None = None, cache_dir: str | Path | None = None,
                     cluster: Cluster | None = None) -> np.ndarray:
    """Duplicate-group id per manifest row (exact copies and verified near-duplicates, transitively; an image with
    no copy is its own group), from the cached fingerprints: the unit to keep whole when splits are drawn."""
    cfg = cfg or AuditConfig()
    df = df.reset_index(drop=True)
    refs = df["image"].astype(str).tolist()
    records = compute_fingerprints(refs, cache_dir, cfg.workers, cluster)
    check_pixels(records, refs)
    pixel = records["pixel_hash"].tolist() if len(records) else []
    pairs = (cached_near_pairs(records["phash"].tolist(), cfg.near_threshold, cache_dir, refs, pixel)
             if cfg.near_duplicates and len(records) else [])
    clusters, _ = duplicate_clusters(pixel, None, cfg.near_threshold, pairs)
    group = np.arange(len(df))
    for c in without_same_file_regions(clusters, df):
        group[c["members"]] = c["members"][0]
    return group


def split_groups(df: pd.DataFrame, cfg: AuditConfig | None = None, cache_dir: str | Path | None = None,
                 cluster: Cluster | None = None) -> np.ndarray:
    """The unit of a split draw per manifest row: one patient merged with every duplicate group it touches (and
    those groups with their other patients), so that no copy and no patient straddles train and val."""
    df = df.reset_index(drop=True)
    uf = UnionFind(len(df))
    for i, g in enumerate(duplicate_groups(df, cfg, cache_dir, cluster)):
        uf.union(i, int(g))
    if "patient_id" in df.columns:
        patients = df["patient_id"].fillna("").astype(str)
        for rows in patients[patients != ""].groupby(patients).indices.values():
            for r in rows[1:]:
                uf.union(int(rows[0]), int(r))
    return np.array([uf.find(i) for i in range(len(df))])


def split_grouper(cfg, cluster: Cluster | None = None) -> Callable[[pd.DataFrame], np.ndarray] | None:
    """What a split draw of this experiment keeps whole: ``split_groups`` from the audit's cached fingerprints (patient
    merged with its duplicate groups), or None when the audit is off (patients alone)."""
    if not cfg.audit.enabled:
        return None
    groups = functools.partial(split_groups, cfg=cfg.audit, cache_dir=audit_cache_dir(cfg), cluster=cluster)
    # preprocess.on_bad_file: skip drops unreadable rows after the draw (the run lists them): each its own group here
    return functools.partial(readable_split_groups, groups=groups) if cfg.preprocess.on_bad_file == "skip" else groups


def readable_split_groups(df: pd.DataFrame, groups: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
    """``groups`` of the rows whose image reads; an unreadable image is a group of its own."""
    df = df.reset_index(drop=True)
    ok = np.flatnonzero([_reads(ref) for ref in df["image"].astype(str)])
    out = np.arange(len(df))
    if len(ok):
        out[ok] = ok[groups(df.iloc[ok].reset_index(drop=True))]
    return out


def _reads(ref: str) -> bool:
    try:
        read_image(ref)
    except (DataError, OSError):
        return False
    return True
