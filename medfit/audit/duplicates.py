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


def duplicate_clusters(pixel_hashes: list[str], hashes: np.ndarray | None, threshold: int = NEAR_THRESHOLD,
                       pairs: list[tuple[int, int, int]] | None = None) -> tuple[list[dict], list[tuple[int, int, int]]]:
    """Clusters of duplicate images: {members, kind: exact|near, max_distance}; also the near pairs found
    (``pairs`` given: already computed, ``hashes`` is not used)."""
    uf = UnionFind(len(pixel_hashes))
    for i, j in exact_pairs(pixel_hashes):
        uf.union(i, j)
    if pairs is None:
        pairs = near_pairs(hashes, threshold) if hashes is not None else []
    for i, j, _ in pairs:
        uf.union(i, j)
    within: dict[int, int] = {}
    for i, j, d in pairs:
        root = uf.find(i)
        within[root] = max(within.get(root, 0), d)
    clusters = []
    for members in uf.groups():
        exact = len({pixel_hashes[m] for m in members}) == 1
        clusters.append({"members": members, "kind": "exact" if exact else "near",
                         "max_distance": 0 if exact else within.get(uf.find(members[0]), 0)})
    return clusters, pairs
