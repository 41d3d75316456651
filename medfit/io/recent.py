"""The last few volumes read in this process, keyed by their files' names, sizes and modification times.

Study rows re-read their volume for every slice (key slice +- k, one row per vertebra, a mask per row, N sampled
slices), and the audit reads each study before training does: a 57x361x361 NIfTI costs ~0.3 s and a 28-file DICOM
series ~3 s each time. Up to 384 MB of volumes are kept (a 512x512x37 CT is 39 MB). Callers get a copy of the array,
so nothing they do in place reaches the remembered one; a changed file has a new key.
"""
from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

MAX_BYTES = 384 * 2**20  # all remembered volumes together; the least recently used go first
_RECENT: OrderedDict = OrderedDict()


def _stamp(path: str) -> tuple:
    """(name, size, mtime_ns) of a file, or of every file of a folder (a DICOM series)."""
    p = Path(path)
    if p.is_dir():
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(p) if e.is_file()))
    st = p.stat()
    return ((p.name, st.st_size, st.st_mtime_ns),)


def recent_volume(path: str, options: dict, read: Callable[[], object]):
    """``read()``'s volume, remembered for the next call with the same files and options (a copy each time)."""
    try:
        key = (str(Path(path).resolve()), _stamp(path), tuple(sorted(options.items())))
    except OSError:
        return read()  # missing or unreadable: the reader says what is wrong
    if key not in _RECENT:
        volume = read()
        if volume.array.nbytes > MAX_BYTES // 2:
            return volume
        _RECENT[key] = volume
        while sum(v.array.nbytes for v in _RECENT.values()) > MAX_BYTES:
            _RECENT.popitem(last=False)
    _RECENT.move_to_end(key)
    volume = _RECENT[key]
    return replace(volume, array=volume.array.copy(), meta=copy.deepcopy(volume.meta))


def forget_volumes() -> None:
    """Drop every remembered volume (benchmarks that time first reads)."""
    _RECENT.clear()
