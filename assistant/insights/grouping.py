"""Questions grouped by meaning: greedy threshold clustering on cosine similarity.

Deterministic for a given order of vectors (the newest failed answer first): each vector joins
the most similar existing group whose centroid is at least ``threshold`` away in cosine
similarity, else it starts a new group. Centroids are the normalised mean of their members.
Quadratic in the worst case (every question its own group), which is why callers bound the
input (``INSIGHTS_GAP_QUESTIONS``). Nothing here touches Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Group:
    members: list[int]  # indexes into the input, in input order
    centroid: list[float] = field(repr=False)


def _unit(vector) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return 0.0  # vectors of two models never match
    return float(np.dot(_unit(a), _unit(b)))


def greedy_groups(vectors: Sequence[Sequence[float]], *, threshold: float) -> list[Group]:
    sums: list[np.ndarray] = []
    centroids: list[np.ndarray] = []
    members: list[list[int]] = []
    for index, vector in enumerate(vectors):
        unit = _unit(vector)
        best, best_score = -1, threshold
        if centroids:
            scores = np.stack(centroids) @ unit
            candidate = int(np.argmax(scores))
            if float(scores[candidate]) >= best_score:
                best = candidate
        if best < 0:
            sums.append(unit.copy())
            centroids.append(unit)
            members.append([index])
            continue
        sums[best] = sums[best] + unit
        centroids[best] = _unit(sums[best])
        members[best].append(index)
    return [
        Group(members=m, centroid=[float(x) for x in c])
        for m, c in zip(members, centroids, strict=True)
    ]
