"""Dataset audit before training: exact and near-duplicates across splits, patient/study/DICOM leaks, label
conflicts and shortcut signals (see ``audit_manifest`` and ``run_audit``); ``split_groups`` gives the unit a
validation draw must keep whole."""
from medfit.audit.result import AuditError, AuditResult
from medfit.audit.grouping import duplicate_groups, split_grouper, split_groups
from medfit.audit.run import audit_manifest, compute_fingerprints, run_audit

__all__ = ["AuditError", "AuditResult", "audit_manifest", "compute_fingerprints", "duplicate_groups", "run_audit",
           "split_grouper", "split_groups"]
