"""Streamed training data (data.storage): shards hold exactly the in-memory inputs, the size rule picks streaming above
the limit, and a run trained from shards repeats the in-memory run's history and predictions for the same seed."""
import numpy as np
import pandas as pd
import pytest
import torch

from medfit.commands.pipeline import prepare_run, train_run
from medfit.config import config_from_dict, updated
from medfit.data.datasets import PreparedDataset
from medfit.data.streamed import StreamedDataset, prepared_bytes, shard_is_complete, storage_for
from medfit.errors import ConfigError
from medfit.train.inputs import dataset_for

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"


def tiny(shared_data, tmp_path, storage):
    return config_from_dict({
        "name": f"pmnist-{storage}", "seed": 7, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "channels": 1,
                 "limit_per_split": 96, "storage": storage},
        "preprocess": {"cache_dir": str(tmp_path / "cache")},
        "model": {"name": "test_resnet"},
        "train": {"epochs": 2, "batch_size": 32, "logger": "csv", "progress_bar": False},
        "audit": {"near_duplicates": False},
    })


def test_the_size_rule_streams_above_the_limit_only():
    size = prepared_bytes(1000, (1, 28, 28), np.float32)
    assert size == 3_136_000
    assert storage_for("auto", 0.003, 1000, (1, 28, 28), np.float32) == "stream"  # 3.136 MB > 3 MB
    assert storage_for("auto", 0.004, 1000, (1, 28, 28), np.float32) == "memory"
    assert storage_for("auto", 0.004, 1000, (1, 28, 28), np.float16) == "memory"
    assert storage_for("stream", 8, 1, (1, 8, 8), np.float32) == "stream"
    with pytest.raises(ConfigError, match="data.storage 'disk'"):
        storage_for("disk", 8, 1, (1, 8, 8), np.float32)


def test_a_shard_holds_the_in_memory_inputs_and_a_cut_short_one_is_rebuilt(shared_data, tmp_path):
    cfg = tiny(shared_data, tmp_path, "stream")
    _, manifest, cfg = prepare_run(cfg)
    train = manifest.split("train")
    streamed = dataset_for(train, cfg, progress=False)
    memory = dataset_for(train, updated(cfg, {"data.storage": "memory"}), progress=False)
    assert isinstance(streamed, StreamedDataset) and isinstance(memory, PreparedDataset)
    assert len(streamed) == len(memory) == len(train.df)
    for i in (0, 5, len(memory) - 1):
        (a, ya, ia), (b, yb, ib) = streamed[i], memory[i]
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b) and ya == yb and ia == ib
    assert torch.equal(streamed.images.float(), memory.images)
    path = streamed.path
    assert path.parent == tmp_path / "cache" / "shards"
    assert shard_is_complete(path, len(memory), (1, 28, 28), np.float32)
    with open(path, "r+b") as fh:  # an interrupted copy: the last item missing
        fh.truncate(path.stat().st_size - 28 * 28 * 4)
    assert not shard_is_complete(path, len(memory), (1, 28, 28), np.float32)
    again = dataset_for(train, cfg, progress=False)
    assert again.path == path and torch.equal(again.images.float(), memory.images)


def test_streamed_training_repeats_the_in_memory_run(shared_data, tmp_path):
    runs = {s: train_run(tiny(shared_data, tmp_path, s)) for s in ("memory", "stream")}
    assert list((tmp_path / "cache" / "shards").glob("*.npy"))  # the stream run did read shards
    logs = {s: pd.read_csv(run.file("training_log")) for s, run in runs.items()}
    columns = [c for c in logs["memory"].columns if "time" not in c and not c.endswith("_s")]
    assert any("val" in c for c in columns) and len(logs["memory"]) >= 2
    pd.testing.assert_frame_equal(logs["stream"][columns], logs["memory"][columns])
    memory, stream = (runs[s].read_predictions() for s in ("memory", "stream"))
    assert np.array_equal(stream["prob"].to_numpy(), memory["prob"].to_numpy())
