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

from iqabench_plugins.niqe.matlab import imresize_half
from iqabench_plugins.niqe.scratch import scratch
from iqabench_plugins.niqe.nss import PAIR_SHIFTS, aggd_moments, fit_aggd_moments, mscn

SCALES = 2
FEATURES_PER_SCALE = 18


def _scale_features(coefficients: NDArray[np.float64], block: int) -> NDArray[np.float64]:
    """(n_blocks, 18): [shape, mean scale] of the MSCN and [shape, mean, beta_l, beta_r] per pair product."""
    blocks = (block, block)
    shape, left_std, right_std = fit_aggd_moments(aggd_moments(coefficients, blocks))
    to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    columns = [shape, (left_std * to_beta + right_std * to_beta) / 2]
    for shift in PAIR_SHIFTS:
        shape, left_std, right_std = fit_aggd_moments(aggd_moments(coefficients, blocks, shift))
        to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
        beta_left, beta_right = left_std * to_beta, right_std * to_beta
        mean = (beta_right - beta_left) * (gamma(2 / shape) / gamma(1 / shape))
        columns += [shape, mean, beta_left, beta_right]
    return np.stack(columns, axis=1)


def niqe_features(gray: NDArray, block_size: int = 96) -> NDArray[np.float64]:
    """(n_blocks, 36) NIQE features of a gray image in [0, 255]; rows may hold NaN (flat blocks).

    Raises ``ValueError`` when the image holds no whole block.
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
        per_scale.append(_scale_features(mscn(image, border="replicate"), block_size // scale))
        if scale < SCALES:
            image = imresize_half(image)
    return np.concatenate(per_scale, axis=1)
