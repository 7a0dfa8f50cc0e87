"""Bucketed k-means: the allocation rule by hand, bucket edges, and Eq. (2)'s centroid scores."""

import numpy as np

from iqabench_plugins.rali.bucketed_kmeans import (
    allocate_clusters,
    bucket_of,
    bucketed_kmeans,
)


def test_allocation_by_hand_largest_remainder():
    # non-empty buckets 0, 2, 3, 4 get one each; 4 more are shared by population among buckets with room:
    # bucket 3 (1 member) is full, so weights 10, 5, 4 (sum 19): quotas 2.105, 1.053, 0.842 -> floors 2, 1, 0,
    # one left over goes to the largest remainder (bucket 4, 0.842).
    assert allocate_clusters(np.array([10, 0, 5, 1, 4]), 8).tolist() == [3, 0, 2, 1, 2]


def test_allocation_saturates_small_buckets_and_reshares():
    # 1 each -> 5 left; weights 2, 20 (sum 22): bucket 0 quota 0.45 <= room 1 and bucket 1 quota 4.55 <= 19
    # -> floors 0, 4; remainder 1 goes to 0.55 (bucket 1) -> [1, 6]
    assert allocate_clusters(np.array([2, 20]), 7).tolist() == [1, 6]
    # 1 each -> 9 left; weights 3, 30: bucket 0 quota 0.82 -> [1+0, 1+8] then remainder by fraction:
    # fractions 0.818 and 0.182 -> bucket 0 gets it -> [2, 9]
    assert allocate_clusters(np.array([3, 30]), 11).tolist() == [2, 9]
    # never more clusters than members: total capped to the number of samples
    assert allocate_clusters(np.array([2, 1, 3]), 250).tolist() == [2, 1, 3]


def test_allocation_fewer_clusters_than_buckets_goes_to_most_populated():
    assert allocate_clusters(np.array([3, 5, 0, 5, 1]), 2).tolist() == [0, 1, 0, 1, 0]


def test_allocation_always_sums_to_min_k_n():
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = rng.integers(0, 30, size=rng.integers(1, 40))
        total = int(rng.integers(1, 300))
        allocation = allocate_clusters(counts, total)
        assert allocation.sum() == min(total, counts.sum())
        assert np.all(allocation <= counts)
        if total >= np.count_nonzero(counts):
            assert np.all(allocation[counts > 0] >= 1)


def test_bucket_edges_equal_width_over_1_5():
    # 240 buckets of width 1/60; 5.0 belongs to the last bucket
    assert bucket_of(np.array([1.0, 1.0 + 1 / 60 - 1e-9, 1.0 + 1 / 60 + 1e-9, 3.0, 5.0]),
                     240).tolist() == [0, 0, 1, 120, 239]


def test_centroid_scores_are_member_means():
    # two buckets ([1,3) and [3,5]) with one cluster each: centroids and scores are plain means (Eq. 2)
    features = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 10.0]])
    scores = np.array([1.5, 2.5, 4.0, 5.0])
    result = bucketed_kmeans(features, scores, num_buckets=2, num_clusters=2)
    assert np.allclose(result.centroids, [[1.0, 0.0], [11.0, 10.0]])
    assert np.allclose(result.scores, [2.0, 4.5])


def test_bucketed_scores_cover_the_range_plain_kmeans_does_not():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8))  # features unrelated to scores
    scores = rng.uniform(1, 5, size=200)
    bucketed = bucketed_kmeans(features, scores, num_buckets=8, num_clusters=8)
    plain = bucketed_kmeans(features, scores, num_buckets=1, num_clusters=8)
    assert len(bucketed.scores) == len(plain.scores) == 8
    assert np.ptp(bucketed.scores) > 3.0
    assert np.ptp(plain.scores) < 1.5
