"""A smaller copy of the shared chest X-ray folder tree (symlinks to the real images, same split/class folders and file
names), for tests whose runs keep a few dozen images per split: building the manifest of the whole folder (duplicate
groups of 5,856 images for the val draw) costs far more than their training."""
from pathlib import Path

CXR = "chest-xray-pneumonia-224"


def chest_subset(shared_data: Path, dest: Path, per_class: dict[str, int]) -> Path:
    """Link ``per_class[split]`` images of each class (evenly spread over the sorted file names, so over many patients)
    into ``dest/chest-xray-pneumonia-224/<split>/<CLASS>/``; returns ``dest`` (a data dir like ``shared_data``)."""
    for split, n in per_class.items():
        for class_dir in sorted((shared_data / CXR / split).iterdir()):
            files = sorted(class_dir.glob("*.jpeg"))
            out = dest / CXR / split / class_dir.name
            out.mkdir(parents=True)
            for f in files[::max(1, len(files) // n)][:n]:
                (out / f.name).symlink_to(f)
    return dest
