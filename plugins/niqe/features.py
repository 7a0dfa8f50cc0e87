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

from iqabench_plugins.niqe.matlab import imresize
from iqabench_plugins.niqe.nss import PAIR_SHIFTS, fit_aggd, mscn, pair_products

SCALES = 2
FEATURES_PER_SCALE = 18


def _blocks(image: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Non-overlapping ``size`` x ``size`` blocks as a (n_blocks, size, size) array, row-major grid."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    return image.reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(rows * cols, size, size)


def _scale_features(coefficients: NDArray[np.float64], block: int) -> NDArray[np.float64]:
    """(n_blocks, 18): [shape, mean scale] of the MSCN and [shape, mean, beta_l, beta_r] per pair product."""
    blocks = _blocks(coefficients, block)
    n = len(blocks)
    columns = []
    shape, left_std, right_std = fit_aggd(blocks.reshape(n, -1))
    to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    columns += [shape, (left_std + right_std) * to_beta / 2]
    for shift in PAIR_SHIFTS:
        products = pair_products(blocks, shift)
        shape, left_std, right_std = fit_aggd(products.reshape(n, -1))
        to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
        beta_left, beta_right = left_std * to_beta, right_std * to_beta
        mean = (beta_right - beta_left) * gamma(2 / shape) / gamma(1 / shape)
        columns += [shape, mean, beta_left, beta_right]
    return np.stack(columns, axis=1)


def niqe_features(gray: NDArray, block_size: int = 96) -> NDArray[np.float64]:
    """(n_blocks, 36) NIQE features of a gray image in [0, 255]; rows may hold NaN (flat blocks).

    Raises ``ValueError`` when the image holds no whole block.
    """
    image = np.asarray(gray, dtype=np.float64)
    rows, cols = image.shape[0] // block_size, image.shape[1] // block_size
    if rows == 0 or cols == 0:
        raise ValueError(
            f"NIQE needs at least one {block_size}x{block_size} block, the image is {image.shape[1]}x{image.shape[0]}"
        )
    image = image[: rows * block_size, : cols * block_size]
    per_scale = []
    for scale in range(1, SCALES + 1):
        coefficients = mscn(image, border="replicate")
        per_scale.append(_scale_features(coefficients, block_size // scale))
        if scale < SCALES:
            image = imresize(image, 0.5)
    return np.concatenate(per_scale, axis=1)
