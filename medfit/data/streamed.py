"""Prepared inputs that need not fit in memory: written once into a ``.npy`` shard, then read item by item.

A shard is a plain ``.npy`` array (N, *input shape) written in one pass (temporary file, then ``os.replace``) and read
back with positional reads (``os.pread``): an item is one read at a fixed offset, so any sampler order (the
epoch-seeded shuffle, Lightning's distributed sampler) costs the same, the process keeps no pages of the file mapped
(its resident memory stays flat as the dataset grows; the OS page cache keeps what fits) and worker processes each
open their own descriptor. ``np.load(path, mmap_mode="r")`` reads the same files.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from medfit.data.manifest import Manifest
from medfit.errors import ConfigError

GB = 1e9


def prepared_bytes(n: int, shape: tuple[int, ...], dtype) -> int:
    """Bytes that ``n`` prepared inputs of ``shape`` and ``dtype`` take in memory."""
    return n * math.prod(shape) * np.dtype(dtype).itemsize


def storage_for(storage: str, memory_limit_gb: float, n: int, shape: tuple[int, ...], dtype) -> str:
    """``memory`` or ``stream``: as ``data.storage`` says, or (``auto``) streamed when the inputs exceed the limit."""
    if storage not in ("auto", "memory", "stream"):
        raise ConfigError(f"data.storage {storage!r}: expected auto, memory or stream")
    if storage != "auto":
        return storage
    return "stream" if prepared_bytes(n, shape, dtype) > memory_limit_gb * GB else "memory"


def shard_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file (C order), from its header."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        if fortran:
            raise ValueError(f"{path}: a Fortran-ordered array, not a shard")
        return tuple(shape), dtype, fh.tell()


def shard_is_complete(path: Path, n: int, shape: tuple[int, ...], dtype) -> bool:
    """True when ``path`` is a shard of ``n`` items of ``shape``/``dtype`` holding every byte (a stale or cut-short
    file is rebuilt; its content is named by the key in its file name)."""
    if not path.is_file():
        return False
    try:
        stored, stored_dtype, offset = shard_header(path)
    except (OSError, ValueError):
        return False
    return (stored == (n, *shape) and stored_dtype == np.dtype(dtype)
            and path.stat().st_size == offset + prepared_bytes(n, shape, dtype))


def write_shard(path: str | Path, rows: list, load: Callable[[object], np.ndarray], dtype, first: np.ndarray,
                progress: bool = True, desc: str = "writing shard") -> Path:
    """Write ``load(row)`` of every row into a ``.npy`` shard at ``path``, one item at a time (never all in memory),
    atomically; ``first`` is ``load(rows[0])``, already read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (len(rows), *first.shape)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:8]}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.lib.format.write_array_header_2_0(fh, header)
            for i, row in enumerate(tqdm(rows, desc=desc, disable=not progress, leave=False)):
                item = first if i == 0 else load(row)
                if item.shape != first.shape:
                    raise ConfigError(f"{row['image']}: prepared input of shape {item.shape}, the first was "
                                      f"{first.shape}; every input of a dataset must have one shape")
                fh.write(np.ascontiguousarray(item, dtype=dtype).tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class StreamedDataset(Dataset):
    """The rows of a manifest read from their shard item by item, with their labels (as ``PreparedDataset`` gives
    them: float32 image, or (image, covariates), label, index)."""

    def __init__(self, manifest: Manifest, path: str | Path, covariates: np.ndarray | None = None):
        self.manifest, self.path = manifest, Path(path)
        shape, self.dtype, self.offset = shard_header(self.path)
        self.n, self.item_shape = shape[0], shape[1:]
        self.item_bytes = prepared_bytes(1, self.item_shape, self.dtype)
        self.labels = manifest.target.label_tensor(manifest.labels())
        self.covariates = None if covariates is None else torch.as_tensor(covariates, dtype=torch.float32)
        self._fd: tuple[int, int] | None = None  # (pid, descriptor): each worker process opens its own

    def __len__(self) -> int:
        return self.n

    def _descriptor(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._fd[1]

    def read(self, i: int) -> np.ndarray:
        """Item ``i`` as stored (one positional read)."""
        if not 0 <= i < self.n:
            raise IndexError(f"{self.path}: item {i} of {self.n}")
        buf = os.pread(self._descriptor(), self.item_bytes, self.offset + i * self.item_bytes)
        return np.frombuffer(buf, dtype=self.dtype).reshape(self.item_shape)

    def __getitem__(self, i: int):
        image = torch.from_numpy(self.read(int(i)).astype(np.float32))
        return (image if self.covariates is None else (image, self.covariates[i])), self.labels[i], i

    @property
    def images(self) -> torch.Tensor:
        """All items as one tensor, memory-mapped copy-on-write (pages are read from the file as they are used)."""
        return torch.from_numpy(np.load(self.path, mmap_mode="c"))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._fd[0] == os.getpid():
            os.close(self._fd[1])
