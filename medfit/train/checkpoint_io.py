"""Lightning's checkpoint reader and writer made safe: tensors and plain data only on load, atomic writes on save.

Lightning saves through an fsspec transaction whose temporary file lives in $TMPDIR and is moved with shutil.move: a
copy straight into the checkpoint's place when $TMPDIR is another filesystem, so a kill mid-copy leaves half a file.
Here the temporary file sits beside the checkpoint and replaces it with one rename (run_folder.atomic_write).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from medfit.run_folder import atomic_write


class SafeCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the checkpoint, then ``os.replace``; ``torch.load`` with
    ``weights_only=True`` whatever the caller asks (a pickled payload in a checkpoint is refused, never run)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
