"""The audit's findings: a plain-words summary line, the audit record, a findings table, and the errors that stop training."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medfit.errors import DataError
from medfit.run_folder import Folder

MAX_LISTED = 5  # findings spelled out in an error line; the rest are in the audit record


@dataclass
class AuditResult:
    """What the audit found in one manifest, and what ``dedupe`` removed."""

    images: int
    clusters: list[dict] = field(default_factory=list)  # duplicate groups: kind, images, splits, labels, ...
    id_leaks: list[dict] = field(default_factory=list)  # kind (patient/study/series/instance), id, splits, images
    shortcuts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)  # image, split, reason
    kept: pd.DataFrame | None = None  # the manifest rows left after dedupe
    timing: dict = field(default_factory=dict)
    near_threshold: int = 0
    skipped: bool = False
    manifest: Any = None  # the Manifest to train on (set by run_audit)
    before: dict | None = None  # finding counts before dedupe removed anything (None: nothing removed)
    after: dict = field(default_factory=dict)  # finding counts of what is left (``run.finding_counts``)
    removed_counts: dict = field(default_factory=dict)  # per class / split / reason (removal_counts)
    near_check: dict = field(default_factory=dict)  # the second check of near-duplicate candidates
    reviewed: list[dict] = field(default_factory=list)  # duplicate groups a reviewer kept (data.corrections)

    @property
    def leaks(self) -> list[dict]:
        """Duplicate groups whose remaining members span more than one split."""
        return [c for c in self.clusters if c["cross_split"]]

    @property
    def conflicts(self) -> list[dict]:
        """Duplicate groups whose remaining members carry different labels."""
        return [c for c in self.clusters if c["conflict"]]

    @property
    def open_id_leaks(self) -> list[dict]:
        """Identifier leaks not resolved by dedupe."""
        return [leak for leak in self.id_leaks if not leak.get("resolved")]

    @property
    def errors(self) -> list[str]:
        """One line per finding that stops training (leaks and label conflicts), each naming its direct pair(s)."""
        lines = []
        for c in self.leaks:
            lines.append(f"{c['kind']} duplicates across splits: " + _pairs_text(c, "leak_pairs", "splits"))
        for c in self.conflicts:
            lines.append(f"{c['kind']} duplicates with different labels: " + _pairs_text(c, "conflict_pairs", "labels"))
        for leak in self.open_id_leaks:
            lines.append(f"{leak['kind']} {leak['id']} in splits {'/'.join(leak['splits'])}: "
                         + ", ".join(leak["images"][:4]) + (" ..." if len(leak["images"]) > 4 else ""))
        return lines

    @property
    def ok(self) -> bool:
        """True when nothing stops training."""
        return not self.errors

    @property
    def summary(self) -> str:
        """The audit in one line of plain words."""
        if self.skipped:
            return "audit skipped (audit.enabled is false)"
        exact = sum(c["kind"] == "exact" for c in self.clusters)
        in_groups = sum(len(c["images"]) for c in self.clusters)
        kinds = sorted({leak["kind"] for leak in self.open_id_leaks})
        aucs = [v["auc"] for v in self.shortcuts.get("classes", {}).values() if v.get("auc") is not None]
        shortcut = (f"{len(self.shortcuts.get('warnings', []))} shortcut warning(s)" if self.shortcuts.get("warnings")
                    else f"no shortcut warning (metadata/intensity AUC {max(aucs):.2f} < "
                    f"{self.shortcuts.get('threshold', 0):.2f})" if aucs else "shortcut check not run")
        parts = [
            f"audit of {self.images} images: {len(self.clusters)} duplicate groups "
            f"({exact} exact, {len(self.clusters) - exact} near; {in_groups} images)",
            f"{len(self.leaks)} span splits",
            f"{len(self.conflicts)} with conflicting labels",
            f"{len(self.open_id_leaks)} {'/'.join(kinds) or 'patient/study/DICOM'} id(s) in two splits",
            shortcut,
        ]
        if self.reviewed:
            parts.append(f"{len(self.reviewed)} group(s) kept by a reviewer (data.corrections), not flagged")
        if self.removed:
            b = self.before or {}
            parts.append(f"before dedupe: {b.get('span_splits', 0)} span splits, {b.get('conflicts', 0)} with "
                         f"conflicting labels, {b.get('id_leaks', 0)} id(s) in two splits, "
                         f"{b.get('within_split_groups', 0)} within one split")
            parts.append(f"{len(self.removed)} training-side image(s) removed by dedupe ({self.removed_text()})")
        return "; ".join(parts)

    def removed_text(self) -> str:
        """Dedupe's removals per class and per split, e.g. 'glioma 30 of 1321, pituitary 2 of 1457; train 32'."""
        counts = self.removed_counts or {}
        classes = ", ".join(f"{k} {v['removed']} of {v['of']}" for k, v in counts.get("by_class", {}).items()
                            if v["removed"])
        splits = ", ".join(f"{k} {v}" for k, v in counts.get("by_split", {}).items())
        return "; ".join(x for x in (classes, splits) if x)

    def error_message(self, json_path: str | Path | None = None) -> str:
        """One line for DataError: counts, the first findings with their files, where the rest are, and the fix."""
        errors = self.errors
        shown = "; ".join(errors[:MAX_LISTED])
        more = f" (+{len(errors) - MAX_LISTED} more)" if len(errors) > MAX_LISTED else ""
        where = f"; full list in {json_path}" if json_path else ""
        return (f"dataset audit: {len(self.leaks)} duplicate group(s) span splits, {len(self.conflicts)} carry "
                f"conflicting labels, {len(self.open_id_leaks)} id(s) appear in two splits: {shown}{more}{where}; "
                "fix the splits/labels, or set audit.dedupe: true (medfit audit --dedupe) to drop the training-side "
                "copies")

    def table(self) -> pd.DataFrame:
        """One row per finding: kind, severity, splits, labels, images."""
        rows = []
        for c in self.clusters:
            severity = "error" if c["cross_split"] or c["conflict"] else "warning"
            what = ("leak" if c["cross_split"] else "") + ("+conflict" if c["conflict"] else "")
            rows.append({"finding": f"{c['kind']} duplicate" + (f" ({what.strip('+')})" if what else ""),
                         "severity": severity, "splits": "/".join(sorted(set(c["splits"]))),
                         "labels": "/".join(sorted({str(x) for x in c["labels"]})), "images": " | ".join(c["images"])})
        for leak in self.id_leaks:
            rows.append({"finding": f"{leak['kind']} id leak", "severity": "resolved" if leak.get("resolved") else "error",
                         "splits": "/".join(leak["splits"]), "labels": "", "images": " | ".join(leak["images"])})
        for text in self.shortcuts.get("warnings", []):
            rows.append({"finding": "shortcut signal", "severity": "warning", "splits": "", "labels": "",
                         "images": text})
        return pd.DataFrame(rows, columns=["finding", "severity", "splits", "labels", "images"])

    def to_dict(self) -> dict:
        """Everything as plain data (the audit record written into the run folder)."""
        return {
            "summary": self.summary, "ok": self.ok, "images": self.images, "skipped": self.skipped,
            "near_threshold": self.near_threshold, "errors": self.errors, "warnings": self.warnings,
            "duplicate_groups": self.clusters, "id_leaks": self.id_leaks, "shortcuts": self.shortcuts,
            "before_dedupe": self.before, "counts": self.after, "removed_counts": self.removed_counts,
            "near_check": self.near_check,
            "removed": self.removed, "reviewed_groups": self.reviewed, "timing": self.timing,
        }

    def write(self, folder: Folder) -> Path:
        """Write the audit record (JSON), its findings table and the removed rows (CSV) into a run or study folder;
        returns the JSON path."""
        folder.write_csv("audit_findings", self.table())
        if self.removed:
            folder.write_csv("audit_removed", pd.DataFrame(self.removed))
        return folder.write_json("audit", json.loads(json.dumps(self.to_dict(), default=str)))

def _pairs_text(cluster: dict, key: str, what: str) -> str:
    """A finding's direct pairs, e.g. 'a.png (train) = b.png (test) [distance 12, similarity 0.990]'."""
    texts = []
    for e in cluster.get(key, []):
        tag = "label " if what == "labels" else ""
        how = "identical pixels" if e["distance"] == 0 and e["similarity"] >= 1 else (
            f"distance {e['distance']}, similarity {e['similarity']:.3f}")
        texts.append(f"{e['images'][0]} ({tag}{e[what][0]}) = {e['images'][1]} ({tag}{e[what][1]}) [{how}]")
    extra = len(cluster["images"]) - 2
    group = f" (in a group of {len(cluster['images'])})" if extra > 0 else ""
    return "; ".join(texts) + group


class AuditError(DataError):
    """The audit found leaks or label conflicts: one line naming the first findings; ``summary`` and ``warnings``
    (shortcut signals included) carry the rest, so that whoever catches it can show the whole audit."""

    def __init__(self, result: AuditResult, json_path: str | Path | None = None):
        super().__init__(result.error_message(json_path))
        self.result = result
        self.summary = result.summary
        self.warnings = list(result.warnings)
