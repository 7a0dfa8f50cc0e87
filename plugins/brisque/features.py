"""The 36 BRISQUE features of ``brisque_feature.m`` (LIVE MATLAB release).

Per scale (full size, then MATLAB ``imresize(im, 0.5)``), over the whole
image: MSCN coefficients with the 7x7 Gaussian window (sigma 7/6) filtered
by ``filter2(..., 'same')``, i.e. with zero padding, unlike NIQE's replicate
borders; a GGD fit of the coefficients -> [shape, variance]; and for the four
circularly shifted pairwise products an AGGD fit -> [shape, mean, left
variance, right variance], where mean = (sigma_r - sigma_l) G(2/a)/G(1/a)
sqrt(G(1/a)/G(3/a)). The image is one block for :func:`aggd_moments`, so
the shift wraps around the whole image as MATLAB's ``circshift`` does.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import gamma

from iqabench_plugins.niqe.matlab import imresize_half
from iqabench_plugins.niqe.scratch import scratch
from iqabench_plugins.niqe.nss import PAIR_SHIFTS, aggd_moments, fit_aggd_moments, fit_ggd_moments, mscn

SCALES = 2
FEATURES = 36


def _scale_features(image: NDArray[np.float64]) -> list[float]:
    coefficients = mscn(image, border="zero")
    whole = coefficients.shape
    shape, variance = fit_ggd_moments(aggd_moments(coefficients, whole))
    features = [float(shape[0]), float(variance[0])]
    for shift in PAIR_SHIFTS:
        fitted = fit_aggd_moments(aggd_moments(coefficients, whole, shift))
        shape, left_std, right_std = (float(value[0]) for value in fitted)
        const = np.sqrt(gamma(1 / shape)) / np.sqrt(gamma(3 / shape))
        mean = (right_std - left_std) * (gamma(2 / shape) / gamma(1 / shape)) * const
        features += [shape, mean, left_std**2, right_std**2]
    return features


def brisque_features(gray: NDArray) -> NDArray[np.float64]:
    """The 36 features of a gray image in [0, 255]; NaN where a fit is undefined (no contrast)."""
    gray = np.asarray(gray)
    image = scratch("gray-float", gray.shape)
    image[...] = gray
    features: list[float] = []
    for scale in range(1, SCALES + 1):
        features += _scale_features(image)
        if scale < SCALES:
            image = imresize_half(image)
    return np.array(features)
