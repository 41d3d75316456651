"""The audit's findings: a plain-words summary line, the audit record, a findings table, and the errors that stop training."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

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
        """One line per finding that stops training (leaks and label conflicts), each naming its files."""
        lines = []
        for c in self.leaks:
            lines.append(f"{c['kind']} duplicates across splits: "
                         + " = ".join(f"{img} ({s})" for img, s in zip(c["images"], c["splits"])))
        for c in self.conflicts:
            lines.append(f"{c['kind']} duplicates with different labels: "
                         + " / ".join(f"{img} (label {lab})" for img, lab in zip(c["images"], c["labels"])))
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
        if self.removed:
            parts.append(f"{len(self.removed)} training-side image(s) removed by dedupe")
        return "; ".join(parts)

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
        for r in self.removed:
            rows.append({"finding": "removed by dedupe", "severity": "info", "splits": r["split"], "labels": "",
                         "images": f"{r['image']} ({r['reason']})"})
        return pd.DataFrame(rows, columns=["finding", "severity", "splits", "labels", "images"])

    def to_dict(self) -> dict:
        """Everything as plain data (the audit record written into the run folder)."""
        return {
            "summary": self.summary, "ok": self.ok, "images": self.images, "skipped": self.skipped,
            "near_threshold": self.near_threshold, "errors": self.errors, "warnings": self.warnings,
            "duplicate_groups": self.clusters, "id_leaks": self.id_leaks, "shortcuts": self.shortcuts,
            "removed": self.removed, "timing": self.timing,
        }

    def write(self, folder: Folder) -> Path:
        """Write the audit (JSON) and its findings table (CSV) into a run or study folder; returns the JSON path."""
        folder.write_csv("audit_findings", self.table())
        return folder.write_json("audit", json.loads(json.dumps(self.to_dict(), default=str)))
