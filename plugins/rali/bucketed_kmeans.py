"""Bucketed k-means: prototypes whose scores cover the whole score range (paper section 4, Eqs. 1-2).

Plain k-means on image embeddings puts its centroids where the images are
densest, so the centroids' mean scores crowd around the average label and
extremes get no prototype. RALI instead splits [1, 5] into N equal-width score
buckets and runs k-means inside each, so every populated score range keeps
prototypes of its own. Each centroid's score is the mean label of its members.

Allocation rule (the paper gives K and N but not how K is split): the total is
``min(K, number of samples)``. If it is at least the number of non-empty
buckets, every non-empty bucket gets one cluster and the rest is shared in
proportion to bucket population (largest-remainder rounding, ties to the
lower bucket), never more clusters than members; a bucket that reaches its
member count is saturated and the remainder is re-shared among the others. If
the total is smaller than the number of non-empty buckets, the most populated
buckets get one cluster each (ties to the lower bucket).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning


def bucket_of(scores: np.ndarray, num_buckets: int, low: float = 1.0, high: float = 5.0) -> np.ndarray:
    """Index of the equal-width bucket of [low, high] holding each score (``high`` falls in the last)."""
    scores = np.asarray(scores, dtype=np.float64)
    index = np.floor((scores - low) / (high - low) * num_buckets).astype(np.int64)
    return np.clip(index, 0, num_buckets - 1)


def allocate_clusters(counts: np.ndarray, total: int) -> np.ndarray:
    """Clusters per bucket under the rule of the module docstring; sums to ``min(total, counts.sum())``."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(min(total, counts.sum()))
    allocation = np.zeros_like(counts)
    nonempty = np.flatnonzero(counts > 0)
    if total < len(nonempty):
        order = sorted(nonempty, key=lambda b: (-counts[b], b))
        allocation[order[:total]] = 1
        return allocation
    allocation[nonempty] = 1
    remaining = total - len(nonempty)
    while remaining > 0:
        room = counts - allocation
        weights = np.where(room > 0, counts, 0).astype(np.float64)
        quota = remaining * weights / weights.sum()
        whole = np.minimum(np.floor(quota).astype(np.int64), room)
        if np.any(quota > room):
            allocation += whole  # saturated buckets are full now; share the rest again
        else:
            left = remaining - int(whole.sum())
            fraction = quota - np.floor(quota)
            candidates = sorted(np.flatnonzero(fraction > 0), key=lambda b: (-fraction[b], b))
            whole[candidates[:left]] += 1
            allocation += whole
        remaining = total - int(allocation.sum())
    return allocation


@dataclass
class BucketedKMeansResult:
    centroids: np.ndarray  # [K, M]
    scores: np.ndarray  # [K]
    #: clusters per bucket as allocated
    allocation: np.ndarray
    #: members per bucket
    counts: np.ndarray


def bucketed_kmeans(features: np.ndarray, scores: np.ndarray, *, num_buckets: int = 240, num_clusters: int = 250,
                    low: float = 1.0, high: float = 5.0, seed: int = 0) -> BucketedKMeansResult:
    """Cluster ``features`` [L, M] within score buckets; ``num_buckets=1`` is plain k-means.

    Clusters that end up without members (only possible with duplicate
    features) are dropped, so fewer than the allocated centroids can return.
    """
    features = np.asarray(features, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    buckets = bucket_of(scores, num_buckets, low, high)
    counts = np.bincount(buckets, minlength=num_buckets)
    allocation = allocate_clusters(counts, num_clusters)
    centroids, centroid_scores = [], []
    for bucket in np.flatnonzero(allocation):
        members = np.flatnonzero(buckets == bucket)
        k = int(allocation[bucket])
        if k == 1:
            labels = np.zeros(len(members), dtype=np.int64)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # duplicate points: handled below
                labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(features[members]).labels_
        for cluster in range(k):
            chosen = members[labels == cluster]
            if len(chosen):
                centroids.append(features[chosen].mean(axis=0))
                centroid_scores.append(scores[chosen].mean())
    return BucketedKMeansResult(np.asarray(centroids), np.asarray(centroid_scores), allocation, counts)
