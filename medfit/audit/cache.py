"""On-disk cache of image fingerprints, keyed like preprocessing: source content hash + hash parameters + medfit version.

All records of one cache folder live in a single JSON file (thousands of tiny files would cost more than they save);
it is rewritten atomically, so an interrupted audit never leaves a half-written cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from medfit.io.medmnist import is_npz_ref, parse_npz_ref
from medfit.preprocess.cache import cache_key, file_digest

log = logging.getLogger(__name__)


def source_digest(ref: str) -> str:
    """Content hash of an image reference: file (or series folder) bytes, plus key and index for an npz entry."""
    if is_npz_ref(ref):
        path, key, index = parse_npz_ref(ref)
        return f"{file_digest(path)}:{key}:{index}"
    path, _, tail = ref.rpartition("::")
    if path and tail.lstrip("-").isdigit():  # volume::slice
        return f"{file_digest(path)}:{tail}"
    return file_digest(ref)


def near_pairs_path(root: str | Path, phashes: list[str], params: dict) -> Path:
    """Where the near-duplicate pairs of exactly these hashes (in this order) and parameters are kept."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for value in phashes:
        h.update(value.encode())
    return Path(root) / f"near-pairs-{h.hexdigest()[:40]}.json"


class FingerprintCache:
    """``<root>/fingerprints.json``: record key -> fingerprint dict."""

    def __init__(self, root: str | Path):
        self.path = Path(root) / "fingerprints.json"
        self.records: dict[str, dict] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                self.records = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("audit cache %s is unreadable (%s); rebuilding it", self.path, exc)

    @staticmethod
    def key(ref: str, params: dict) -> str:
        """The record key of one image for the given hash parameters."""
        return cache_key(source_digest(str(ref)), params)

    def get(self, key: str) -> dict | None:
        """The cached record, or None."""
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        """Remember a record (written by ``save``)."""
        self.records[key] = record
        self._dirty = True

    def save(self) -> None:
        """Write the records atomically when anything changed."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fingerprints-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.records, fh)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False
