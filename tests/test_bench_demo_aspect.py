"""bench/demo_aspect.py: an original's aspect ratio is recovered from its squashed copy and its centre-square copy."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np

SPEC = importlib.util.spec_from_file_location("demo_aspect", Path(__file__).resolve().parents[1] / "bench" / "demo_aspect.py")
demo_aspect = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(demo_aspect)


def _original(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random image (blobs), so that shifted or rescaled copies correlate less than the true match."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (6, max(6, round(6 * width / height)))).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _copies(original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The uploader's 224x224 squash and MedMNIST's centre square shrunk to 28x28."""
    h, w = original.shape
    k = (w - h) // 2
    square = cv2.resize(original[:, k:k + h], (28, 28), interpolation=cv2.INTER_AREA)
    return cv2.resize(original, (224, 224), interpolation=cv2.INTER_AREA), square


def test_the_share_of_columns_recovers_height_over_width():
    shapes = [(300, 400), (300, 500), (300, 330), (300, 600)]  # f = 0.75, 0.6, 0.91, 0.5
    pairs = [_copies(_original(h, w, seed)) for seed, (h, w) in enumerate(shapes)]
    share, corr = demo_aspect.original_shapes([p[0] for p in pairs], np.stack([p[1] for p in pairs]))
    assert np.allclose(share, [h / w for h, w in shapes], atol=0.03), share
    assert (corr > 0.97).all(), corr


def test_centre_columns_keeps_the_middle_share():
    image = np.tile(np.arange(200, dtype=np.uint8), (100, 1))
    out = demo_aspect.centre_columns(image, 0.5, size=50)
    assert out.shape == (50, 50)
    assert abs(int(out[0, 0]) - 50) <= 2 and abs(int(out[0, -1]) - 149) <= 2
