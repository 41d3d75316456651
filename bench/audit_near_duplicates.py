"""Near-duplicate precision and recall of the audit on labelled pairs built from the shared data.

Positives: planted copies (resize, JPEG, gamma, contrast, small crops, all combined) of originals drawn from each set.
Negatives: every pair of distinct images of different patients (chest X-rays: patient ids from the file names;
spine MRI: sagittal slices of one exam vs the other subjects' exams; PneumoniaMNIST: every pair with different pixels,
no patient ids), plus the hardest negatives we have: slices of another exam of the same spine region (T1 vs T1/TIRM,
hash distance 28-32, like the different brain tumours the hash alone paired). A pair is flagged when its hash distance
is <= NEAR_THRESHOLD ("hash only", the audit before) and, for the audit now, its second check
(``duplicates.view_similarity``) is >= NEAR_SIMILARITY. Precision = flagged copies / all flagged pairs.

Run: OMP_NUM_THREADS=1 python bench/audit_near_duplicates.py [--data ../shared/data] [--planted 60] [--timing]

Measured (--planted 60: 60 originals x 13 transforms = 780 planted copies per set; NEAR_THRESHOLD 32,
NEAR_SIMILARITY 0.965):
  set                    images  distinct-patient pairs  hash only: flagged neg, precision, recall  now: same
  chest X-ray              5840              17,043,164         0, 1.000, 0.947                      0, 1.000, 0.928
  spine MRI slices          387                  62,462         0, 1.000, 0.945                      0, 1.000, 0.923
  PneumoniaMNIST (28 px)   5856              17,143,440         0, 1.000, 0.877                      0, 1.000, 0.877
  hard negatives: slices of another exam of one spine region (32 pairs at hash distance 28-32, similarity <= 0.956):
    hash only flags all 32 (precision 0.958 against the 780 copies); now 0 (precision 1.000).
  Per transform (chest and spine): resize, JPEG q20-50, contrast, gamma 0.7/1.5, crops of 3-5 %/side, 4 % off one
  side or corner, and all combined: 100 % found, similarity >= 0.976. Crops of 8 %/side: hash only 6.7 % (chest)
  found, now 0-7 % (similarity 0.79-0.92: no view aligns them), which is all the recall lost. PneumoniaMNIST's 28 px
  images: JPEG q50 70 %, q20 0 % (the hash moves 48-88 bits), 8 %/side crops 70 %, the rest 100 %.
"""
from __future__ import annotations

import argparse
import io
import re
import tempfile
import time
from pathlib import Path

import medfit  # noqa: F401  (before anything that may import torchvision)
import cv2
import numpy as np
from PIL import Image

from medfit.audit import audit_manifest
from medfit.audit.duplicates import NEAR_SIMILARITY, NEAR_THRESHOLD, aligned_views, near_pairs, view_similarity
from medfit.audit.fingerprint import grey_float, perceptual_hash, similarity_base, similarity_view
from medfit.data.manifest import manifest_from_folder_tree
from medfit.io import read_volume

SPINE_SUBJECT = {"AKa3": "AKa", "AKa4": "AKa", "AKs6": "AKs", "AKs7": "AKs", "AKs8": "AKs", "DzZ_T1": "DzZ",
                 "DzZ_T2": "DzZ"}  # multi-sequence exams of one subject (spine-mri-vb-sagittal/SOURCE.txt)


def jpeg(a, q):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(buf))


def crop(a, f):
    h, w = a.shape[:2]
    dy, dx = int(h * f), int(w * f)
    return a[dy:h - dy, dx:w - dx]


def gamma(a, g):
    return (255 * (np.arange(256) / 255.0) ** g).astype(np.uint8)[a]


TRANSFORMS = {
    "resize 160": lambda a: cv2.resize(a, (160, 160), interpolation=cv2.INTER_AREA),
    "resize 512x400": lambda a: cv2.resize(a, (512, 400), interpolation=cv2.INTER_CUBIC),
    "jpeg q50": lambda a: jpeg(a, 50),
    "jpeg q20": lambda a: jpeg(a, 20),
    "contrast 0.7x+40": lambda a: np.clip(a * 0.7 + 40, 0, 255).astype(np.uint8),
    "gamma 0.7": lambda a: gamma(a, 0.7),
    "gamma 1.5": lambda a: gamma(a, 1.5),
    "crop 3%/side": lambda a: crop(a, 0.03),
    "crop 5%/side": lambda a: crop(a, 0.05),
    "crop 8%/side": lambda a: crop(a, 0.08),
    "crop 4% top+left": lambda a: a[int(a.shape[0] * 0.04):, int(a.shape[1] * 0.04):],
    "crop 4% top only": lambda a: a[int(a.shape[0] * 0.04):],
    "crop4+resize+jpeg+gamma": lambda a: jpeg(cv2.resize(crop(gamma(a, 0.8), 0.04), (180, 180),
                                                         interpolation=cv2.INTER_AREA), 60),
}


def u8(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return np.clip((a - a.min()) / (np.ptp(a) + 1e-6) * 255, 0, 255).astype(np.uint8)


def load_sets(data: Path) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """name -> (uint8 grey images, patient id per image; '' = unknown)."""
    chest = manifest_from_folder_tree(data / "chest-xray-pneumonia-224", r"((?:NORMAL2-)?IM-\d+|person\d+)",
                                      patient_scope="split").df
    sets = {"chest X-ray": ([np.asarray(Image.open(p).convert("L")) for p in chest["image"]],
                            chest["patient_id"].to_numpy())}
    images, exams = [], []
    for path in sorted((data / "spine-mri-vb-sagittal").glob("VB1_*.nii.gz")):
        if "mask" in path.name:
            continue
        exam = re.sub(r"VB1_\d+_|\.nii\.gz", "", path.name)
        vol = read_volume(path).array
        n = len(vol)
        for s in range(int(n * 0.2), int(n * 0.8)):  # the slices through the spine
            images.append(u8(vol[s]))
            exams.append(exam)
    sets["spine MRI"] = (images, np.array(exams))
    with np.load(data / "pneumoniamnist" / "pneumoniamnist_reconstructed.npz") as z:
        pm = np.concatenate([z[f"{s}_images"] for s in ("train", "val", "test")])
    sets["PneumoniaMNIST"] = (list(pm), np.array([""] * len(pm)))
    return sets


class Checker:
    """Hash distance and second-check similarity of image pairs, as the audit computes them."""

    def __init__(self, images: list[np.ndarray]):
        self.grey = [grey_float(a) for a in images]
        self.hashes = np.stack([perceptual_hash(g) for g in self.grey])
        self.bases: dict[int, np.ndarray] = {}

    def similarity(self, i: int, j: int, copy: np.ndarray | None = None) -> tuple[int, float]:
        ha = self.hashes[i]
        hb = self.hashes[j] if copy is None else perceptual_hash(grey_float(copy))
        d = int(min((ha[0] != hb).sum(axis=1).min(), (hb[0] != ha).sum(axis=1).min()))
        ba = self.base(i)
        bb = self.base(j) if copy is None else similarity_base(grey_float(copy))
        return d, max(view_similarity(similarity_view(ba, va), similarity_view(bb, vb))
                      for va, vb in aligned_views(ha, hb))

    def base(self, i: int) -> np.ndarray:
        if i not in self.bases:
            self.bases[i] = similarity_base(self.grey[i])
        return self.bases[i]


def planted(checker: Checker, images, n: int, rng) -> dict[str, list[tuple[int, float]]]:
    picks = rng.choice(len(images), min(n, len(images)), replace=False)
    return {name: [checker.similarity(i, i, fn(images[i])) for i in picks] for name, fn in TRANSFORMS.items()}


def negatives(checker: Checker, images, patients, subject=lambda p: p) -> tuple[int, list, list]:
    """(number of distinct-patient pairs, their candidate pairs (d, sim), hard pairs: other exam of one subject)."""
    n = len(images)
    digest = [hash(a.tobytes()) for a in images]
    same_patient = (patients[:, None] == patients[None, :]) & (patients[:, None] != "")
    subj = np.array([subject(p) for p in patients])
    same_subject = (subj[:, None] == subj[None, :]) & (subj[:, None] != "")
    iu = np.triu_indices(n, 1)
    distinct = int((~same_subject[iu]).sum())
    flagged, hard = [], []
    for i, j, d in near_pairs(checker.hashes, NEAR_THRESHOLD):
        if digest[i] == digest[j] or same_patient[i, j]:
            continue
        pair = (d, checker.similarity(i, j)[1])
        (hard if same_subject[i, j] else flagged).append(pair)
    return distinct, flagged, hard


def rates(copies: list[tuple[int, float]], neg: list[tuple[int, float]]) -> dict:
    out = {}
    for name, verified in (("hash only", False), ("now", True)):
        hit = lambda d, s: d <= NEAR_THRESHOLD and (not verified or s >= NEAR_SIMILARITY)
        tp, fp = sum(hit(*p) for p in copies), sum(hit(*p) for p in neg)
        out[name] = (fp, tp / max(tp + fp, 1), tp / max(len(copies), 1))
    return out


def timing(data: Path) -> None:
    m = manifest_from_folder_tree(data / "chest-xray-pneumonia-224", r"((?:NORMAL2-)?IM-\d+|person\d+)",
                                  patient_scope="split")
    with tempfile.TemporaryDirectory() as cache:
        for run in ("cold", "cached"):
            t0 = time.perf_counter()
            result = audit_manifest(m.df, ["label"], m.class_names, "binary", cache_dir=cache)
            print(f"full audit of {len(m.df)} chest X-rays, {run}: {time.perf_counter() - t0:.1f} s {result.timing}")
    print(result.summary)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--planted", type=int, default=60)
    parser.add_argument("--timing", action="store_true", help="also time the full audit of the chest X-rays")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"hash threshold {NEAR_THRESHOLD}, similarity >= {NEAR_SIMILARITY}; flagged negatives / precision / recall")
    for name, (images, patients) in load_sets(Path(args.data)).items():
        t0 = time.perf_counter()
        checker = Checker(images)
        subject = (lambda p: SPINE_SUBJECT.get(p, p)) if name == "spine MRI" else (lambda p: p)
        per_transform = planted(checker, images, args.planted, rng)
        copies = [p for pairs in per_transform.values() for p in pairs]
        distinct, neg, hard = negatives(checker, images, patients, subject)
        r = rates(copies, neg)
        print(f"{name}: {len(images)} images, {distinct:,} distinct-patient pairs, {len(copies)} planted copies "
              f"({time.perf_counter() - t0:.0f} s)")
        for how, (fp, prec, rec) in r.items():
            print(f"  {how:9s}: {fp} flagged negatives, precision {prec:.3f}, recall {rec:.3f}")
        if hard:
            h = rates(copies, hard)
            print(f"  hard negatives (other exam of one region, {len(hard)} candidate pairs, distance "
                  f"{min(d for d, _ in hard)}-{max(d for d, _ in hard)}, similarity <= {max(s for _, s in hard):.3f}): "
                  + "; ".join(f"{how} {fp} flagged, precision {prec:.3f}" for how, (fp, prec, _) in h.items()))
        for t, pairs in per_transform.items():
            d = np.array([p[0] for p in pairs])
            s = np.array([p[1] for p in pairs])
            found = np.mean((d <= NEAR_THRESHOLD) & (s >= NEAR_SIMILARITY))
            print(f"    {t:26s} distance max {d.max():3d}, similarity min {s.min():.3f}, found {found:6.1%}")
    if args.timing:
        timing(Path(args.data))


if __name__ == "__main__":
    main()
