"""Natural-scene statistics shared by NIQE and BRISQUE (Mittal, Moorthy & Bovik).

Both models normalise luminance into MSCN coefficients and summarise them,
and the products of neighbouring coefficients, by (asymmetric) generalised
Gaussian fits found by moment matching over the shape grid 0.2:0.001:10 of
the MATLAB releases. The fits here take a batch of sample vectors at once
(one row per NIQE block) so that an image costs a few array passes, not a
Python loop over blocks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import correlate1d
from scipy.special import gamma

from iqabench_plugins.niqe.matlab import gaussian_window

#: MATLAB ``0.2:0.001:10``: the shapes the releases can return.
SHAPE_GRID: NDArray[np.float64] = np.linspace(0.2, 10.0, 9801)
#: AGGD moment ratio r(g) = G(2/g)^2 / (G(1/g) G(3/g)); strictly increasing on the grid.
AGGD_RATIO: NDArray[np.float64] = gamma(2 / SHAPE_GRID) ** 2 / (gamma(1 / SHAPE_GRID) * gamma(3 / SHAPE_GRID))
#: GGD moment ratio rho(g) = G(1/g) G(3/g) / G(2/g)^2; strictly decreasing on the grid.
GGD_RATIO: NDArray[np.float64] = 1 / AGGD_RATIO

#: Neighbour offsets (rows, cols) of the four pairwise products, as MATLAB ``circshift`` shifts.
#: NIQE writes the diagonal one as [1 -1], BRISQUE as [-1 1]; under circular shifting both give
#: the same multiset of products, hence the same fits.
PAIR_SHIFTS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))


def mscn(
    image: NDArray[np.floating], border: Literal["replicate", "zero"], stabiliser: float = 1.0
) -> NDArray[np.float64]:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + C)``.

    mu and sigma come from the 7x7 Gaussian window (sigma 7/6). NIQE filters
    with ``imfilter(..., 'replicate')``, BRISQUE with ``filter2(..., 'same')``
    (zero padding), hence ``border``. sigma is ``sqrt(|E[I^2] - mu^2|)`` as in
    both releases (the ``abs`` absorbs negative rounding residue).
    """
    mode = {"replicate": "nearest", "zero": "constant"}[border]
    window = gaussian_window()

    def smooth(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return correlate1d(correlate1d(x, window, axis=0, mode=mode), window, axis=1, mode=mode)

    image = np.asarray(image, dtype=np.float64)
    mu = smooth(image)
    sigma = np.sqrt(np.abs(smooth(image * image) - mu * mu))
    return (image - mu) / (sigma + stabiliser)


def _nearest_on_grid(increasing_table: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.intp]:
    """Index of the table entry closest to each value; MATLAB's ``min`` semantics.

    The table is increasing, so the closest entry is one of the two neighbours
    of the insertion point; ties go to the lower index like ``min``'s first
    hit, and NaN goes to index 0 because MATLAB's ``min`` over an all-NaN
    vector returns position 1.
    """
    table = increasing_table
    safe = np.where(np.isnan(values), table[0], values)
    upper = np.clip(np.searchsorted(table, safe), 1, len(table) - 1)
    lower = upper - 1
    index = np.where(np.abs(table[upper] - safe) < np.abs(table[lower] - safe), upper, lower)
    return np.where(np.isnan(values), 0, index)


def fit_aggd(samples: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Asymmetric generalised Gaussian fit of each row: (shape, left std, right std).

    Moment matching of ``estimateaggdparam.m``: the left/right standard
    deviations over negative/positive samples, their ratio corrects
    ``E|x|^2 / E[x^2]`` and the shape is the grid value whose r(shape) is
    closest. A row without negative or without positive samples has an
    undefined side (NaN), exactly as MATLAB's ``mean([])`` gives.
    """
    x = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    squares = x * x
    negative, positive = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.sum(squares * negative, axis=1) / np.count_nonzero(negative, axis=1))
        right_std = np.sqrt(np.sum(squares * positive, axis=1) / np.count_nonzero(positive, axis=1))
        ratio = left_std / right_std
        r_hat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(squares, axis=1)
        r_hat_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    shape = SHAPE_GRID[_nearest_on_grid(AGGD_RATIO, r_hat_norm)]
    return shape, left_std, right_std


def fit_ggd(samples: NDArray[np.floating]) -> tuple[float, float]:
    """Generalised Gaussian fit of a sample vector: (shape, variance), as ``estimateggdparam.m``."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    variance = np.mean(x * x)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = variance / np.mean(np.abs(x)) ** 2
    # The GGD table decreases; negating both sides keeps distances and index order.
    shape = float(SHAPE_GRID[_nearest_on_grid(-GGD_RATIO, np.array([-rho]))[0]])
    return shape, float(variance)


def pair_products(coefficients: NDArray[np.float64], shift: tuple[int, int]) -> NDArray[np.float64]:
    """``x .* circshift(x, shift)`` over the last two axes (a block or a stack of blocks)."""
    return coefficients * np.roll(coefficients, shift, axis=(-2, -1))
