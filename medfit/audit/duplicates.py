"""Exact and near-duplicate images grouped into clusters (union-find over duplicate pairs)."""
from __future__ import annotations

import numpy as np

# Near-duplicate threshold: Hamming distance (of 255 bits) between one image's reference view and the closest view of
# the other. Measured on the 5840 Kermany chest X-rays (bench/audit_near_duplicates.py, 200 planted copies each):
# copies after resize, JPEG q>=20, gamma 0.7-1.5, linear contrast, up to 5 % trimmed per side or 4 % off one side or
# corner, and all of these combined land at <= 26; of the 17 million pairs of distinct images none is <= 36 (4 <= 40),
# so 32 flags no clean pair (measured false-positive rate 0 / 17,049,880; imagehash's 64-bit pHash at 10: 2.6e-3).
# Not found: crops over ~6 % per side (8 %/side: 42 % found), rotations, flips.
NEAR_THRESHOLD = 32
# Second check of every candidate pair (hash distance <= NEAR_THRESHOLD, pixels not identical): the histogram-matched
# correlation of the best-aligned 64 px views (``view_similarity``). Copies keep >= NEAR_SIMILARITY; different images
# whose coarse layout agrees (other patients' slices at one level, T1 exams of one spine region) stay below
# (figures: bench/audit_near_duplicates.py).
NEAR_SIMILARITY = 0.965


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, i: int) -> int:
        """The representative of i's set."""
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    def union(self, i: int, j: int) -> None:
        """Merge the sets of i and j."""
        a, b = self.find(i), self.find(j)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]

    def groups(self) -> list[list[int]]:
        """Sets with more than one member, each sorted, ordered by their first member."""
        roots: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            roots.setdefault(self.find(i), []).append(i)
        return sorted((g for g in roots.values() if len(g) > 1), key=lambda g: g[0])


def exact_pairs(pixel_hashes: list[str]) -> list[tuple[int, int]]:
    """Pairs (first, other) of images whose decoded pixels are identical."""
    first: dict[str, int] = {}
    pairs = []
    for i, h in enumerate(pixel_hashes):
        if h in first:
            pairs.append((first[h], i))
        else:
            first[h] = i
    return pairs


def near_pairs(hashes: np.ndarray, threshold: int = NEAR_THRESHOLD, block: int = 256) -> list[tuple[int, int, int]]:
    """Pairs (i, j, distance), i < j, whose multi-zoom perceptual hashes are within ``threshold`` bits.

    ``hashes`` is bool (N, zooms, bits); the distance of a pair is the smallest over both directions of
    "reference view of one vs any zoom of the other". Computed as one +-1 matrix product per block of rows.
    """
    n, zooms, bits = hashes.shape
    if n < 2:
        return []
    signs = hashes.astype(np.float32) * 2 - 1
    ref = signs[:, 0]
    variants = signs.reshape(n * zooms, bits).T.copy()
    best: dict[tuple[int, int], int] = {}
    for start in range(0, n, block):
        dot = ref[start:start + block] @ variants  # (b, n*zooms)
        d = ((bits - dot.reshape(len(dot), n, zooms).max(axis=2)) / 2).round().astype(np.int16)
        for a, b in zip(*np.nonzero(d <= threshold)):
            i, j = int(a) + start, int(b)
            if i != j:
                key = (min(i, j), max(i, j))
                best[key] = min(best.get(key, int(d[a, b])), int(d[a, b]))
    return [(i, j, d) for (i, j), d in sorted(best.items())]


def aligned_views(hash_a: np.ndarray, hash_b: np.ndarray, top: int = 3) -> list[tuple[int, int]]:
    """The ``top`` view pairs (view of a, view of b) that the perceptual hashes align best; each pairs one image's
    reference view 0 with a view of the other."""
    ab, ba = (hash_a[0] != hash_b).sum(axis=1), (hash_b[0] != hash_a).sum(axis=1)
    options = [(int(d), 0, v) for v, d in enumerate(ab)] + [(int(d), v, 0) for v, d in enumerate(ba) if v]
    return [(va, vb) for _, va, vb in sorted(options)[:top]]


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    return x / (np.sqrt((x ** 2).sum()) + 1e-9)


def _matched(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``src`` with each value replaced by ``ref``'s value of the same rank (histogram matching: undoes any monotone
    grey-level change such as gamma, windowing or contrast, and keeps JPEG noise in flat areas at their level)."""
    out = np.empty(src.size, np.float32)
    out[np.argsort(src.ravel(), kind="stable")] = np.sort(ref.ravel())
    return out.reshape(src.shape)


def view_similarity(x: np.ndarray, y: np.ndarray) -> float:
    """How alike two aligned thumbnails are: the lower of the two histogram-matched correlations (1 = same picture)."""
    score = min((_unit(x) * _unit(_matched(y, x))).sum(), (_unit(_matched(x, y)) * _unit(y)).sum())
    return float(round(score, 4))


def duplicate_clusters(pixel_hashes: list[str], hashes: np.ndarray | None, threshold: int = NEAR_THRESHOLD,
                       pairs: list[tuple] | None = None,
                       min_similarity: float = NEAR_SIMILARITY) -> tuple[list[dict], list[tuple]]:
    """Clusters of duplicate images: {members, kind: exact|near, max_distance, pairs}; also the near pairs used.

    ``pairs`` (already computed; ``hashes`` is then not used) are (i, j, distance) or (i, j, distance, similarity);
    with a similarity, only pairs at ``min_similarity`` or above join images. A cluster is transitive (a chain of
    copies is one group); its ``pairs`` keep the direct evidence, which is what leaks and label conflicts are judged
    on (``differing_pairs``).
    """
    uf = UnionFind(len(pixel_hashes))
    for i, j in exact_pairs(pixel_hashes):
        uf.union(i, j)
    if pairs is None:
        pairs = near_pairs(hashes, threshold) if hashes is not None else []
    pairs = [p for p in pairs if len(p) < 4 or p[3] >= min_similarity]
    for i, j, *_ in pairs:
        uf.union(i, j)
    inside: dict[int, list[tuple]] = {}
    for pair in pairs:
        if pixel_hashes[pair[0]] != pixel_hashes[pair[1]]:
            inside.setdefault(uf.find(pair[0]), []).append(tuple(pair))
    clusters = []
    for members in uf.groups():
        own = inside.get(uf.find(members[0]), [])
        exact = len({pixel_hashes[m] for m in members}) == 1
        clusters.append({"members": members, "kind": "exact" if exact else "near",
                         "max_distance": max((p[2] for p in own), default=0), "pairs": own})
    return clusters, pairs


def differing_pairs(members: list[int], pairs: list[tuple], pixel_hashes: list[str], values: list,
                    keep=None) -> list[tuple[int, int, int, float]]:
    """Direct evidence in one cluster: pairs (a, b, distance, similarity) of kept members that are themselves copies
    (identical pixels, or one verified near pair between their pixel groups) and whose ``values`` differ.
    One pair per pixel group and per near pair; a chain through other images is never evidence."""
    nodes: dict[str, list[int]] = {}
    for m in members:
        if keep is None or m in keep:
            nodes.setdefault(pixel_hashes[m], []).append(m)
    out = []
    for group in nodes.values():
        other = next((b for b in group[1:] if str(values[b]) != str(values[group[0]])), None)
        if other is not None:
            out.append((group[0], other, 0, 1.0))
    for i, j, d, *sim in pairs:
        left, right = nodes.get(pixel_hashes[i], []), nodes.get(pixel_hashes[j], [])
        found = next(((a, b) for a in left for b in right if str(values[a]) != str(values[b])), None)
        if found:
            out.append((*found, int(d), float(sim[0]) if sim else 1.0))
    return out


def direct_neighbours(members: list[int], pairs: list[tuple], pixel_hashes: list[str]) -> dict[int, set[int]]:
    """For each member, the members that are themselves its copies (identical pixels or a verified near pair)."""
    nodes: dict[str, list[int]] = {}
    for m in members:
        nodes.setdefault(pixel_hashes[m], []).append(m)
    links = {h: {h} for h in nodes}
    for i, j, *_ in pairs:
        links[pixel_hashes[i]].add(pixel_hashes[j])
        links[pixel_hashes[j]].add(pixel_hashes[i])
    return {m: {n for h in links[pixel_hashes[m]] for n in nodes[h] if n != m} for m in members}
