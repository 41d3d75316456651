"""Dataset audit before training: exact and near-duplicates across splits, patient/study/DICOM leaks, label
conflicts and shortcut signals (see ``audit_manifest`` and ``run_audit``)."""
from medfit.audit.result import AuditResult
from medfit.audit.run import audit_manifest, compute_fingerprints, run_audit

__all__ = ["AuditResult", "audit_manifest", "compute_fingerprints", "run_audit"]
