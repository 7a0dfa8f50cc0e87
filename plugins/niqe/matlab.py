"""The three MATLAB image operations the LIVE NIQE and BRISQUE releases rely on.

Both releases were written and calibrated in MATLAB; their published numbers
depend on MATLAB's exact ``rgb2gray``, ``fspecial('gaussian')`` and
``imresize`` (bicubic, antialiased), which differ from the PIL / OpenCV /
scikit-image equivalents by enough to move NIQE in the second decimal. They
are written here from MATLAB's documented definitions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

#: MATLAB rgb2gray weights: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]),
#: i.e. the Y of NTSC YIQ, to full double precision (0.298936, 0.587043, 0.114021).
RGB2GRAY_WEIGHTS: NDArray[np.float64] = np.linalg.inv(
    np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
)[0]


def rgb2gray_uint8(image: Image.Image | NDArray) -> NDArray[np.uint8]:
    """MATLAB ``rgb2gray`` of an 8-bit RGB image: weighted sum, rounded half up, saturated.

    On ``uint8`` input MATLAB returns ``uint8``, so the releases (which call
    ``rgb2gray(uint8(im))`` before ``double``) see integer gray levels; the
    rounding is part of the reference values. A 2-D array is taken as gray already.
    """
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if pixels.ndim == 2:
        return pixels.astype(np.uint8, copy=False)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {pixels.shape}; convert it to RGB first")
    gray = pixels.astype(np.float64) @ RGB2GRAY_WEIGHTS
    return np.clip(np.floor(gray + 0.5), 0, 255).astype(np.uint8)


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> NDArray[np.float64]:
    """The 1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` normalised to sum 1.

    The 2-D window is the outer product of this vector with itself; filtering
    separably gives the same result to rounding error and is 3.5x cheaper.
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    window = np.exp(-(x * x) / (2 * sigma * sigma))
    return window / window.sum()


def _cubic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Keys' cubic convolution kernel with a = -0.5, as in MATLAB ``imresize``."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _contributions(in_length: int, scale: float) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Weights and (mirrored) source indices of each output sample, as MATLAB computes them.

    When shrinking, MATLAB stretches the kernel by 1/scale (antialiasing), places
    output sample u (1-based) at input position u/scale + (1 - 1/scale)/2, and
    reflects indices that fall off the image (symmetric, edge repeated).
    """
    out_length = int(np.ceil(in_length * scale))
    stretch = min(scale, 1.0)  # antialiasing: a shrinking kernel is widened by 1/scale
    kernel_width = 4.0 / stretch
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = stretch * _cubic(stretch * (u[:, None] - indices))
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    zero_based = mirror[np.mod(indices.astype(np.intp) - 1, 2 * in_length)]
    return weights, zero_based


def imresize(image: NDArray[np.floating], scale: float) -> NDArray[np.float64]:
    """MATLAB ``imresize(image, scale)`` (bicubic, antialiased) of a 2-D double image.

    Rows are resized first, then columns, as MATLAB does for equal scales.
    Each output sample is a weighted sum over a handful of taps, so the work
    is a loop over taps rather than a dense (out x in) matrix product.
    """
    result = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        weights, indices = _contributions(result.shape[axis], scale)
        moved = np.moveaxis(result, axis, 0)
        resized = np.zeros((weights.shape[0],) + moved.shape[1:])
        for tap in range(weights.shape[1]):
            resized += weights[:, tap, None] * moved[indices[:, tap]]
        result = np.moveaxis(resized, 0, axis)
    return result
