"""Compiled NSS kernels (numba): the optional speed-up of NIQE and BRISQUE.

The NumPy code in :mod:`.statistics` and :mod:`.matlab` is the reference; these
kernels compute the same quantities in one pass each, without image-sized
temporaries:

* :func:`mscn` fuses both Gaussian smoothings, the variance, the exact-zero
  rule and the division, row by row. It performs the reference's floating-point
  operations in the reference's order (vertical pass: centre tap, then the
  symmetric pairs from the outside in, as :func:`.statistics.gaussian_smooth`;
  horizontal pass: the same order, which is scipy's ``correlate1d`` for a
  symmetric kernel), so its coefficients equal the reference's **bit for bit**.
* :func:`imresize_half` is exact in any summation order (dyadic weights), so it
  too equals the reference bit for bit.
* :func:`pair_moments` sums the per-block moments of the coefficients and of
  the four pair products in one pass over the image. Its sums add the same
  numbers as the reference in another order, so they agree to rounding
  (about 1e-15 relative), and scores to about 1e-13.

Imported only when a model computes with ``kernel="numba"`` (or ``"auto"`` with
numba installed): numba's import and its cached machine code are not paid by
commands that do not score. The first use on a machine compiles the kernels
(a few seconds, once); numba caches the result beside this file (or in its
user cache when that folder is read-only).
"""

from __future__ import annotations

import numba
import numpy as np

from iqabench_plugins.nss.matlab import gaussian_window, half_scale_weights

_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_OPTIONS)
def _row(image, row, height, replicate, zeros):
    if row < 0:
        return image[0] if replicate else zeros
    if row >= height:
        return image[height - 1] if replicate else zeros
    return image[row]


@numba.njit("void(float64[:, ::1], float64[::1], boolean, float64, float64[:, ::1])", **_OPTIONS)
def _mscn(image, window, replicate, zero_residue, out):
    height, width = image.shape
    w0, w1, w2, w3 = window[0], window[1], window[2], window[3]
    mean_rows = np.empty(width + 6)
    square_rows = np.empty(width + 6)
    zeros = np.zeros(width)
    for i in range(height):
        r0 = _row(image, i - 3, height, replicate, zeros)
        r1 = _row(image, i - 2, height, replicate, zeros)
        r2 = _row(image, i - 1, height, replicate, zeros)
        r3 = image[i]
        r4 = _row(image, i + 1, height, replicate, zeros)
        r5 = _row(image, i + 2, height, replicate, zeros)
        r6 = _row(image, i + 3, height, replicate, zeros)
        for j in range(width):  # vertical pass of I and of I^2
            m = r3[j] * w3
            m += (r0[j] + r6[j]) * w0
            m += (r1[j] + r5[j]) * w1
            m += (r2[j] + r4[j]) * w2
            s = (r3[j] * r3[j]) * w3
            s += (r0[j] * r0[j] + r6[j] * r6[j]) * w0
            s += (r1[j] * r1[j] + r5[j] * r5[j]) * w1
            s += (r2[j] * r2[j] + r4[j] * r4[j]) * w2
            mean_rows[j + 3] = m
            square_rows[j + 3] = s
        for k in range(3):  # horizontal borders
            if replicate:
                mean_rows[k], square_rows[k] = mean_rows[3], square_rows[3]
                mean_rows[width + 3 + k], square_rows[width + 3 + k] = mean_rows[width + 2], square_rows[width + 2]
            else:
                mean_rows[k] = square_rows[k] = 0.0
                mean_rows[width + 3 + k] = square_rows[width + 3 + k] = 0.0
        result = out[i]
        for j in range(width):  # horizontal pass, then (I - mu) / (sigma + 1)
            c = j + 3
            mu = mean_rows[c] * w3
            mu += (mean_rows[c - 3] + mean_rows[c + 3]) * w0
            mu += (mean_rows[c - 2] + mean_rows[c + 2]) * w1
            mu += (mean_rows[c - 1] + mean_rows[c + 1]) * w2
            sigma = square_rows[c] * w3
            sigma += (square_rows[c - 3] + square_rows[c + 3]) * w0
            sigma += (square_rows[c - 2] + square_rows[c + 2]) * w1
            sigma += (square_rows[c - 1] + square_rows[c + 1]) * w2
            sigma = np.sqrt(np.abs(sigma - mu * mu)) + 1.0
            centred = r3[j] - mu
            if np.abs(centred) < zero_residue:
                centred = 0.0
            result[j] = centred / sigma


@numba.njit(**_OPTIONS)
def _span(a, b, start, stop, offset):
    """Moments of the samples ``a[j] * b[j + offset]`` for j in [start, stop)."""
    negative = positive = negative_square = positive_square = absolute = 0.0
    for j in range(start, stop):
        value = a[j] * b[j + offset]
        low = min(value, 0.0)
        high = max(value, 0.0)
        negative += 1.0 if value < 0.0 else 0.0
        positive += 1.0 if value > 0.0 else 0.0
        negative_square += low * low
        positive_square += high * high
        absolute += high - low
    return negative, negative_square, positive, positive_square, absolute


@numba.njit(**_OPTIONS)
def _plain(a, start, stop):
    """Moments of the samples ``a[j]`` for j in [start, stop)."""
    negative = positive = negative_square = positive_square = absolute = 0.0
    for j in range(start, stop):
        value = a[j]
        low = min(value, 0.0)
        high = max(value, 0.0)
        negative += 1.0 if value < 0.0 else 0.0
        positive += 1.0 if value > 0.0 else 0.0
        negative_square += low * low
        positive_square += high * high
        absolute += high - low
    return negative, negative_square, positive, positive_square, absolute


@numba.njit(**_OPTIONS)
def _add(out, sample_set, block_row, block_col, moments, value):
    """Add a span's moments and the one wrapped-around sample ``value`` (NaN: none) to a block."""
    extra_negative = extra_positive = extra_square_negative = extra_square_positive = 0.0
    if value < 0.0:
        extra_negative, extra_square_negative = 1.0, value * value
    elif value > 0.0:
        extra_positive, extra_square_positive = 1.0, value * value
    has_value = value == value
    out[sample_set, 0, block_row, block_col] += moments[0] + extra_negative
    out[sample_set, 1, block_row, block_col] += moments[1] + extra_square_negative
    out[sample_set, 2, block_row, block_col] += moments[2] + extra_positive
    out[sample_set, 3, block_row, block_col] += moments[3] + extra_square_positive
    out[sample_set, 4, block_row, block_col] += moments[4] + (abs(value) if has_value else 0.0)


@numba.njit("void(float64[:, ::1], int64, int64, float64[:, :, :, ::1])", **_OPTIONS)
def _pair_moments(x, block_rows, block_cols, out):
    height, width = x.shape
    nan = np.nan
    for block_row in range(height // block_rows):
        for local_row in range(block_rows):
            row = x[block_row * block_rows + local_row]
            # circshift by one row inside the block: row 0 pairs with the block's last row
            above = x[block_row * block_rows + (local_row - 1) % block_rows]
            for block_col in range(width // block_cols):
                first = block_col * block_cols
                last = first + block_cols - 1
                _add(out, 0, block_row, block_col, _plain(row, first, last + 1), nan)
                # shift (0, 1): column j with j - 1, the first with the last
                _add(out, 1, block_row, block_col, _span(row, row, first + 1, last + 1, -1), row[first] * row[last])
                # shift (1, 0)
                _add(out, 2, block_row, block_col, _span(row, above, first, last + 1, 0), nan)
                # shift (1, 1): the row above, column j - 1
                _add(out, 3, block_row, block_col, _span(row, above, first + 1, last + 1, -1),
                     row[first] * above[last])
                # shift (1, -1): the row above, column j + 1, the last with the first
                _add(out, 4, block_row, block_col, _span(row, above, first, last, 1), row[last] * above[first])


@numba.njit(**_OPTIONS)
def _mirror(index, length):
    """MATLAB imresize's symmetric padding with the edge repeated (``aux = [1:n, n:-1:1]``)."""
    index %= 2 * length
    return index if index < length else 2 * length - 1 - index


@numba.njit("void(float64[:, ::1], float64[::1], float64[:, ::1], float64[:, ::1])", **_OPTIONS)
def _imresize_half(image, weights, rows_done, out):
    height, width = image.shape
    out_height, out_width = rows_done.shape[0], out.shape[1]
    taps = weights.shape[0]
    for o in range(out_height):  # rows first, as MATLAB does for equal scales
        target = rows_done[o]
        target[:] = 0.0
        for t in range(taps):
            source = image[_mirror(2 * o + t - 3, height)]
            weight = weights[t]
            for j in range(width):
                target[j] += source[j] * weight
    padded = np.empty(2 * out_width + taps)
    for i in range(out_height):  # then columns, from a mirrored copy of the row
        row = rows_done[i]
        for k in range(padded.shape[0]):
            padded[k] = row[_mirror(k - 3, width)]
        result = out[i]
        for o in range(out_width):
            total = 0.0
            for t in range(taps):
                total += padded[2 * o + t] * weights[t]
            result[o] = total


_WINDOW = gaussian_window()
_HALF_WEIGHTS = half_scale_weights()


def mscn(image: np.ndarray, replicate: bool, zero_residue: float, out: np.ndarray) -> np.ndarray:
    """MSCN coefficients of a C-contiguous float64 image into ``out``; see :func:`.statistics.mscn`."""
    _mscn(image, _WINDOW, replicate, zero_residue, out)
    return out


def pair_moments(coefficients: np.ndarray, block: tuple[int, int], out: np.ndarray) -> np.ndarray:
    """``out[set, moment, block row, block col]``: sets are the coefficients, then the four pair shifts.

    Moments: negative count, negative square sum, positive count, positive square sum, absolute sum.
    """
    out[...] = 0.0
    _pair_moments(coefficients, block[0], block[1], out)
    return out


def imresize_half(image: np.ndarray, out: np.ndarray, rows_done: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(image, 0.5)`` into ``out`` (``rows_done``: scratch of ceil(h/2) x w)."""
    _imresize_half(image, _HALF_WEIGHTS, rows_done, out)
    return out
