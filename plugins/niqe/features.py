"""NIQE block features: 18 per block and scale, two scales, 36 per block.

Follows ``computequality.m`` / ``computefeature.m`` of the LIVE release: crop
to whole blocks, MSCN with replicate borders, per-block AGGD fits of the
coefficients and of four circularly shifted pairwise products (the shift
wraps inside each block, as ``blkproc`` hands each block to
``computefeature``), then ``imresize(im, 0.5)`` and the same on half-size
blocks, so both scales see the same block grid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import gamma

from iqabench_plugins.nss.scratch import scratch
from iqabench_plugins.nss.statistics import Moments, fit_aggd_moments, half_scale, sample_moments

SCALES = 2
FEATURES_PER_SCALE = 18


def _scale_features(moments: list[Moments]) -> NDArray[np.float64]:
    """(n_blocks, 18): [shape, mean scale] of the MSCN and [shape, mean, beta_l, beta_r] per pair product."""
    shape, left_std, right_std = fit_aggd_moments(moments[0])
    to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    columns = [shape, (left_std * to_beta + right_std * to_beta) / 2]
    for pair in moments[1:]:
        shape, left_std, right_std = fit_aggd_moments(pair)
        to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
        beta_left, beta_right = left_std * to_beta, right_std * to_beta
        mean = (beta_right - beta_left) * (gamma(2 / shape) / gamma(1 / shape))
        columns += [shape, mean, beta_left, beta_right]
    return np.stack(columns, axis=1)


def niqe_features(gray: NDArray, block_size: int = 96, kernel: str = "numpy") -> NDArray[np.float64]:
    """(n_blocks, 36) NIQE features of a gray image in [0, 255]; rows may hold NaN (flat blocks).

    ``kernel``: ``numba`` or ``numpy`` (:func:`.nss.resolve_kernel`). Raises ``ValueError`` when the
    image holds no whole block.
    """
    image = np.asarray(gray)
    rows, cols = image.shape[0] // block_size, image.shape[1] // block_size
    if rows == 0 or cols == 0:
        raise ValueError(
            f"NIQE needs at least one {block_size}x{block_size} block, the image is {image.shape[1]}x{image.shape[0]}"
        )
    cropped = image[: rows * block_size, : cols * block_size]
    image = scratch("gray-float", cropped.shape)
    image[...] = cropped
    per_scale = []
    for scale in range(1, SCALES + 1):
        block = block_size // scale
        per_scale.append(_scale_features(sample_moments(image, "replicate", (block, block), kernel)))
        if scale < SCALES:
            image = half_scale(image, kernel)
    return np.concatenate(per_scale, axis=1)
