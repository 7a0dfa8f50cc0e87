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

from iqabench_plugins.nss.scratch import scratch

#: MATLAB rgb2gray weights: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]) (the Y of NTSC
#: YIQ). In exact arithmetic that row is 589399/1971656, 1157447/1971656, 112405/985828 (summing to 1); these are
#: the nearest doubles, as written in MATLAB Coder's generated rgb2gray code. MATLAB documents them to 15 digits as
#: 0.298936021293775, 0.587043074451121, 0.114020904255103. Constants, not an inverse computed at import: a
#: LAPACK inverse differs in its last bits from one BLAS build and CPU to the next.
RGB2GRAY_WEIGHTS: NDArray[np.float64] = np.array([0.29893602129377539, 0.58704307445112125, 0.11402090425510332])


def rgb2gray_uint8(image: Image.Image | NDArray) -> NDArray[np.uint8]:
    """MATLAB ``rgb2gray`` of an 8-bit RGB image: weighted sum, rounded half up, saturated.

    On ``uint8`` input MATLAB returns ``uint8``, so the releases (which call
    ``rgb2gray(uint8(im))`` before ``double``) see integer gray levels; the
    rounding is part of the reference values. A 2-D array is taken as gray already.

    The weighted sum is accumulated one channel plane at a time (no (H, W, 3)
    float copy). Any float64 summation order gives MATLAB's result: over all
    2^24 RGB triples the exact weighted sum is at least 4.5e-6 away from a
    rounding boundary, far above float64 rounding (a test checks every triple).
    """
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if pixels.ndim == 2:
        return pixels.astype(np.uint8, copy=False)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {pixels.shape}; convert it to RGB first")
    gray = np.multiply(pixels[..., 0], RGB2GRAY_WEIGHTS[0], dtype=np.float64)
    gray += pixels[..., 1] * RGB2GRAY_WEIGHTS[1]
    gray += pixels[..., 2] * RGB2GRAY_WEIGHTS[2]
    gray += 0.5
    np.floor(gray, out=gray)
    np.clip(gray, 0, 255, out=gray)
    return gray.astype(np.uint8)


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


def half_scale_weights() -> NDArray[np.float64]:
    """The 8 taps of MATLAB ``imresize(im, 0.5)`` (bicubic, antialiased), left to right.

    When shrinking by 1/2, MATLAB widens the cubic kernel by 2 (antialiasing,
    ``h(x) = 0.5 * cubic(x / 2)``), places output sample u (1-based) at input
    position 2u - 0.5 and keeps the taps with non-zero weight: inputs
    2u - 4 ... 2u + 3, at distances 3.5 ... -3.5. The weights are dyadic
    rationals summing to exactly 1, so the resize is exact in float64 whatever
    the summation order.
    """
    distances = np.arange(3.5, -4.0, -1.0)
    weights = 0.5 * _cubic(0.5 * distances)
    return weights / weights.sum()


def imresize_half(image: NDArray[np.floating]) -> NDArray[np.float64]:
    """MATLAB ``imresize(image, 0.5)`` of a 2-D double image: ceil(size / 2), symmetric borders.

    Rows are resized first, then columns, as MATLAB does for equal scales;
    indices that fall off the image are mirrored with the edge repeated
    (MATLAB's ``aux = [1:n, n:-1:1]``). Each output is an 8-tap sum over
    strided slices of the padded image: no gathers, no dense matrix.
    """
    result = np.asarray(image, dtype=np.float64)
    weights = half_scale_weights()
    for axis in (0, 1):
        length = result.shape[axis]
        out_length = -(-length // 2)
        # Output o (0-based) reads inputs 2o-3 .. 2o+4: pad 4 before and enough after, mirrored.
        pad_after = 2 * out_length + 3 - length
        moved = np.moveaxis(result, axis, 0)
        padded = scratch(f"imresize-padded-{axis}", (length + 4 + pad_after,) + moved.shape[1:])
        padded[4 : 4 + length] = moved
        mirror = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
        padded[:4] = moved[mirror[np.arange(-4, 0) % (2 * length)]]
        padded[4 + length :] = moved[mirror[np.arange(length, length + pad_after) % (2 * length)]]
        resized = scratch(f"imresize-out-{axis}", (out_length,) + moved.shape[1:])
        term = scratch(f"imresize-term-{axis}", resized.shape)
        np.multiply(padded[1 : 1 + 2 * out_length : 2], weights[0], out=resized)
        for tap in range(1, len(weights)):
            resized += np.multiply(padded[tap + 1 : tap + 1 + 2 * out_length : 2], weights[tap], out=term)
        result = np.moveaxis(resized, 0, axis)
    contiguous = scratch("imresize-result", result.shape)
    contiguous[...] = result
    return contiguous
