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

from iqabench_plugins.nss.scratch import scratch
from iqabench_plugins.nss.statistics import fit_aggd_moments, fit_ggd_moments, half_scale, sample_moments

SCALES = 2
FEATURES = 36


def _scale_features(image: NDArray[np.float64], kernel: str) -> list[float]:
    plain, *pairs = sample_moments(image, "zero", image.shape, kernel)
    shape, variance = fit_ggd_moments(plain)
    features = [float(shape[0]), float(variance[0])]
    for pair in pairs:
        fitted = fit_aggd_moments(pair)
        shape, left_std, right_std = (float(value[0]) for value in fitted)
        const = np.sqrt(gamma(1 / shape)) / np.sqrt(gamma(3 / shape))
        mean = (right_std - left_std) * (gamma(2 / shape) / gamma(1 / shape)) * const
        features += [shape, mean, left_std**2, right_std**2]
    return features


def brisque_features(gray: NDArray, kernel: str = "numpy") -> NDArray[np.float64]:
    """The 36 features of a gray image in [0, 255]; NaN where a fit is undefined (no contrast).

    ``kernel``: ``numba`` or ``numpy`` (:func:`iqabench_plugins.nss.statistics.resolve_kernel`).
    """
    gray = np.asarray(gray)
    image = scratch("gray-float", gray.shape)
    image[...] = gray
    features: list[float] = []
    for scale in range(1, SCALES + 1):
        features += _scale_features(image, kernel)
        if scale < SCALES:
            image = half_scale(image, kernel)
    return np.array(features)
