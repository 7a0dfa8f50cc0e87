"""Seeded train/test splits for datasets that publish none.

Synthetic-distortion sets (KADID-10k, TID2013, CSIQ, PIPAL) derive many
images from each pristine reference; a split that puts versions of the same
reference on both sides leaks content from training into testing, so these are
split by reference (pyiqa's and VisualQuality-R1's convention). Sets without
references (SPAQ, AGIQA-3K, LIVE Challenge) are split by image. ``random.Random``
is used rather than numpy so that a seed gives the same split on every
platform and numpy version.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any


def split_by_reference(rows: Sequence[dict[str, Any]], *, seed: int, test_fraction: float) -> list[str]:
    """The split ("train"/"test") of each row; rows without a ``reference`` are split one by one.

    The references (or images) are sorted, shuffled with ``seed`` and the first
    ``ceil(test_fraction * n)`` of them go to the test set.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    groups = [row.get("reference") or row["image"] for row in rows]
    unique = sorted(set(groups))
    random.Random(seed).shuffle(unique)
    n_test = max(1, math.ceil(test_fraction * len(unique)))
    test_groups = set(unique[:n_test])
    return ["test" if group in test_groups else "train" for group in groups]
