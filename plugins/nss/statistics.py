"""Natural-scene statistics shared by NIQE and BRISQUE (Mittal, Moorthy & Bovik).

Both models normalise luminance into MSCN coefficients and summarise them,
and the products of neighbouring coefficients, by (asymmetric) generalised
Gaussian fits found by moment matching over the shape grid 0.2:0.001:10 of
the MATLAB releases.

Two design points, both about getting the releases' numbers reproducibly:

* **Exact zeros.** Where a pixel's 7x7 neighbourhood is flat (or otherwise
  balanced), ``I - mu`` is exactly zero in real arithmetic, but any
  floating-point filter leaves a residue of about 1e-14 whose *sign* depends
  on the kernel's last bits and the summation order. The AGGD fits count
  samples by sign, so that residue moves NIQE and BRISQUE by up to 5-10 % on
  images with flat regions (docs/niqe_brisque.md). iqabench sets residues
  below :data:`ZERO_RESIDUE` to exactly zero: the real-arithmetic value,
  identical on every platform and for every filter implementation.
* **Moments, not samples.** A fit needs per block only N, sum |v|, and the
  count and sum of squares of the negative and of the positive values.
  :func:`aggd_moments` computes them one strip of rows at a time, so the
  pairwise products never exist as full-image arrays (they stay in cache) and
  NIQE's blocks and BRISQUE's whole image go through the same code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import correlate1d
from scipy.special import gamma

from iqabench_plugins.nss import matlab
from iqabench_plugins.nss.matlab import gaussian_window
from iqabench_plugins.nss.scratch import scratch

#: MATLAB ``0.2:0.001:10``: the shapes the releases can return.
SHAPE_GRID: NDArray[np.float64] = np.linspace(0.2, 10.0, 9801)
#: AGGD moment ratio r(g) = G(2/g)^2 / (G(1/g) G(3/g)) of ``estimateaggdparam.m``; increasing on the grid.
AGGD_RATIO: NDArray[np.float64] = gamma(2 / SHAPE_GRID) ** 2 / (gamma(1 / SHAPE_GRID) * gamma(3 / SHAPE_GRID))
#: GGD moment ratio rho(g) = G(1/g) G(3/g) / G(2/g)^2 of BRISQUE's ``estimateggdparam.m``; decreasing.
GGD_RATIO: NDArray[np.float64] = gamma(1 / SHAPE_GRID) * gamma(3 / SHAPE_GRID) / gamma(2 / SHAPE_GRID) ** 2

#: Neighbour offsets (rows, cols) of the four pairwise products, as MATLAB ``circshift`` shifts.
#: NIQE writes the diagonal one as [1 -1], BRISQUE as [-1 1]; under circular shifting both give
#: the same multiset of products, hence the same fits.
PAIR_SHIFTS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))

#: |I - mu| below this is a floating-point residue of an exact zero. float64 filtering of values
#: in [0, 255] leaves residues under 6e-14; a genuine non-zero I - mu of an 8-bit image (or of its
#: exact half-size resize, whose values are multiples of 2^-16) is above 3e-9 on every calibration
#: image (measured by ``python tools/niqe_brisque_calibration.py --residues``).
ZERO_RESIDUE = 1e-10

#: What replaces exact zeros: nothing (they stay 0) unless a calibration variant asks otherwise.
_EXACT_ZERO_POLICY: ContextVar[Callable[..., NDArray[np.float64]] | None] = ContextVar(
    "exact_zero_policy", default=None
)


@contextmanager
def exact_zero_policy(policy: Callable[..., NDArray[np.float64]]) -> Iterator[None]:
    """Within the block, ``policy(residues, pixels)`` replaces the exact zeros of :func:`mscn`.

    For the calibration's variants only (how MATLAB-like residues would move
    the scores); scoring never sets it. ``residues`` are the float64
    residues, ``pixels`` the image values there.
    """
    token = _EXACT_ZERO_POLICY.set(policy)
    try:
        yield
    finally:
        _EXACT_ZERO_POLICY.reset(token)


#: What computes the statistics: ``numba`` (compiled kernels, :mod:`.kernels`), ``numpy`` (the
#: reference code in this module), or ``auto`` (numba where it is installed).
KERNELS = ("auto", "numba", "numpy")


def resolve_kernel(kernel: str) -> str:
    """``numba`` or ``numpy``: what ``kernel`` computes with on this installation."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if kernel == "numpy":
        return "numpy"
    try:
        import_kernels()
    except ImportError as exc:
        if kernel == "numba":
            raise ImportError(
                f"kernel='numba' needs numba ({exc}): `pip install numba` or `pip install iqabench[fast]`; "
                "kernel='numpy' computes the same statistics without it, about 3x slower"
            ) from None
        return "numpy"
    except Exception as exc:  # numba installed but unable to compile here: the reference code still works
        if kernel == "numba":
            raise
        warnings.warn(f"numba could not compile the NIQE/BRISQUE kernels ({type(exc).__name__}: {exc}); "
                      "computing with NumPy", RuntimeWarning, stacklevel=2)
        return "numpy"
    return "numba"


def import_kernels() -> ModuleType:
    """The compiled kernels (imports numba; compiles on a machine's first use)."""
    from iqabench_plugins.nss import kernels

    return kernels


#: Rows per strip in :func:`aggd_moments`: a few hundred kB per temporary, so they stay in cache.
STRIP_ELEMENTS = 1 << 16


def gaussian_smooth(
    image: NDArray[np.float64], border: Literal["replicate", "zero"], out: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The 7x7 Gaussian window applied separably (columns, then rows), borders as ``border``.

    The vertical pass is seven whole-row slices of a padded copy (the window is
    symmetric: three pair sums), which NumPy runs at memory speed where scipy's
    ``correlate1d`` along columns is about 5x slower; the horizontal pass is
    ``correlate1d``. The last bits differ from other summation orders, which is
    harmless with exact zeros.
    """
    height = image.shape[0]
    window = gaussian_window()
    padded = scratch("smooth-rows", (height + 6, image.shape[1]))
    padded[3:-3] = image
    if border == "replicate":
        padded[:3] = image[0]
        padded[-3:] = image[-1]
    else:
        padded[:3] = 0.0
        padded[-3:] = 0.0
    vertical = np.multiply(padded[3:-3], window[3], out=scratch("smooth-vertical", image.shape))
    pair = scratch("smooth-pair", image.shape)
    for k in range(3):
        np.add(padded[k : k + height], padded[6 - k : 6 - k + height], out=pair)
        pair *= window[k]
        vertical += pair
    mode = "nearest" if border == "replicate" else "constant"
    return correlate1d(vertical, window, axis=1, mode=mode, output=out)


def mscn(image: NDArray[np.floating], border: Literal["replicate", "zero"]) -> NDArray[np.float64]:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + 1)``.

    mu and sigma come from the 7x7 Gaussian window (sigma 7/6). NIQE filters
    with ``imfilter(..., 'replicate')``, BRISQUE with ``filter2(..., 'same')``
    (zero padding), hence ``border``. sigma is ``sqrt(|E[I^2] - mu^2|)`` as in
    both releases (the ``abs`` absorbs rounding). Residues of exact zeros are
    zeroed (:data:`ZERO_RESIDUE`). The result is a pooled array (:func:`scratch`),
    valid until the next call with an image of the same size.
    """
    image = np.asarray(image, dtype=np.float64)
    shape = image.shape
    mu = gaussian_smooth(image, border, scratch("mscn-mu", shape))
    square = np.multiply(image, image, out=scratch("mscn-square", shape))
    sigma = gaussian_smooth(square, border, scratch("mscn-sigma", shape))
    sigma -= np.multiply(mu, mu, out=square)
    np.abs(sigma, out=sigma)
    np.sqrt(sigma, out=sigma)
    sigma += 1.0
    centred = np.subtract(image, mu, out=mu)
    exact_zeros = np.less(np.abs(centred, out=square), ZERO_RESIDUE, out=scratch("mscn-zeros", shape, np.bool_))
    policy = _EXACT_ZERO_POLICY.get()
    if policy is None:
        centred[exact_zeros] = 0.0
    else:
        centred[exact_zeros] = policy(centred[exact_zeros], image[exact_zeros])
    return np.divide(centred, sigma, out=centred)


@dataclass(frozen=True)
class Moments:
    """Per-block sample moments, one entry per block: all a (A)GGD moment fit needs."""

    count: NDArray[np.float64]
    abs_sum: NDArray[np.float64]
    negative_count: NDArray[np.float64]
    negative_square_sum: NDArray[np.float64]
    positive_count: NDArray[np.float64]
    positive_square_sum: NDArray[np.float64]


def _pair_products(
    coefficients: NDArray[np.float64], rows: slice, block: tuple[int, int], shift: tuple[int, int]
) -> NDArray[np.float64]:
    """Rows ``rows`` of ``x .* circshift(x, shift)``, the shift wrapping inside every block.

    MATLAB applies ``circshift`` to the block that ``blkproc`` hands over (for
    BRISQUE the block is the whole image).
    """
    block_rows, block_cols = block
    row_shift, col_shift = shift
    here = coefficients[rows]
    if row_shift:
        index = np.arange(rows.start, rows.stop)
        top = index - index % block_rows
        source = coefficients.take(
            top + (index - row_shift) % block_rows, axis=0, out=scratch("pair-source", here.shape)
        )
    else:
        source = here
    products = scratch("pair-products", here.shape)
    if col_shift == 0:
        return np.multiply(here, source, out=products)
    tiles, neighbours, result = (a.reshape(len(here), -1, block_cols) for a in (here, source, products))
    # circshift by +1 pairs column j with j-1 (and the first with the last); by -1 with j+1.
    lead, rest = (slice(0, 1), slice(1, None)) if col_shift > 0 else (slice(-1, None), slice(None, -1))
    partner_lead, partner_rest = (slice(-1, None), slice(None, -1)) if col_shift > 0 else (slice(0, 1), slice(1, None))
    np.multiply(tiles[..., rest], neighbours[..., partner_rest], out=result[..., rest])
    np.multiply(tiles[..., lead], neighbours[..., partner_lead], out=result[..., lead])
    return products


def aggd_moments(
    coefficients: NDArray[np.float64], block: tuple[int, int], shift: tuple[int, int] | None = None
) -> Moments:
    """Moments of each block's samples: the coefficients themselves, or their products with a shift.

    ``coefficients`` is tiled exactly by ``block`` (rows, cols) blocks; the
    result lists blocks row-major. With ``shift`` the samples are
    ``x .* circshift(x, shift)`` within each block.
    """
    height, width = coefficients.shape
    block_rows, block_cols = block
    grid_rows, grid_cols = height // block_rows, width // block_cols
    strip = max(1, min(block_rows, STRIP_ELEMENTS // width))
    totals = np.zeros((5, grid_rows, grid_cols))
    top = 0
    while top < height:
        bottom = min(top + strip, (top // block_rows + 1) * block_rows)
        rows = slice(top, bottom)
        samples = coefficients[rows] if shift is None else _pair_products(coefficients, rows, block, shift)
        tiles = samples.reshape(bottom - top, grid_cols, block_cols)
        negative = np.minimum(tiles, 0.0, out=scratch("moments-negative", tiles.shape))
        positive = np.maximum(tiles, 0.0, out=scratch("moments-positive", tiles.shape))
        row = top // block_rows
        nonzero = scratch("moments-nonzero", tiles.shape, np.bool_)
        totals[0, row] += np.not_equal(negative, 0.0, out=nonzero).sum(axis=(0, 2))
        totals[1, row] += np.einsum("rcb,rcb->c", negative, negative)
        totals[2, row] += np.not_equal(positive, 0.0, out=nonzero).sum(axis=(0, 2))
        totals[3, row] += np.einsum("rcb,rcb->c", positive, positive)
        totals[4, row] += positive.sum(axis=(0, 2)) - negative.sum(axis=(0, 2))
        top = bottom
    flat = totals.reshape(5, -1)
    return Moments(
        count=np.full(flat.shape[1], float(block_rows * block_cols)),
        abs_sum=flat[4],
        negative_count=flat[0],
        negative_square_sum=flat[1],
        positive_count=flat[2],
        positive_square_sum=flat[3],
    )


def sample_moments(
    image: NDArray[np.float64], border: Literal["replicate", "zero"], block: tuple[int, int], kernel: str = "numpy"
) -> list[Moments]:
    """Block moments of an image's MSCN coefficients and of their four pair products (:data:`PAIR_SHIFTS`).

    ``kernel`` (resolved, :func:`resolve_kernel`) picks the compiled kernels or the NumPy reference; an
    exact-zero policy (calibration variants) always takes the reference.
    """
    if kernel == "numpy" or _EXACT_ZERO_POLICY.get() is not None:
        coefficients = mscn(image, border)
        return [aggd_moments(coefficients, block)] + [aggd_moments(coefficients, block, s) for s in PAIR_SHIFTS]
    kernels = import_kernels()
    image = np.ascontiguousarray(image, dtype=np.float64)
    coefficients = kernels.mscn(image, border == "replicate", ZERO_RESIDUE, scratch("kernel-mscn", image.shape))
    grid = (image.shape[0] // block[0], image.shape[1] // block[1])
    sums = kernels.pair_moments(coefficients, block, scratch("kernel-moments", (1 + len(PAIR_SHIFTS), 5, *grid)))
    count = np.full(grid[0] * grid[1], float(block[0] * block[1]))
    return [
        Moments(count=count, abs_sum=sums[s, 4].ravel(), negative_count=sums[s, 0].ravel(),
                negative_square_sum=sums[s, 1].ravel(), positive_count=sums[s, 2].ravel(),
                positive_square_sum=sums[s, 3].ravel())
        for s in range(1 + len(PAIR_SHIFTS))
    ]


def half_scale(image: NDArray[np.float64], kernel: str = "numpy") -> NDArray[np.float64]:
    """MATLAB ``imresize(image, 0.5)``; the compiled kernel and the reference are both exact, hence equal."""
    if kernel == "numpy":
        return matlab.imresize_half(image)
    height, width = image.shape
    size = (-(-height // 2), -(-width // 2))
    return import_kernels().imresize_half(
        np.ascontiguousarray(image, dtype=np.float64), scratch("kernel-half", size),
        scratch("kernel-half-rows", (size[0], width)),
    )


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


def fit_aggd_moments(moments: Moments) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Asymmetric generalised Gaussian fit per block: (shape, left std, right std).

    Moment matching of ``estimateaggdparam.m``: the left/right standard
    deviations over negative/positive samples, their ratio corrects
    ``E|x|^2 / E[x^2]`` and the shape is the grid value whose r(shape) is
    closest. A block without negative or without positive samples has an
    undefined side (NaN), exactly as MATLAB's ``mean([])`` gives.
    """
    m = moments
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(m.negative_square_sum / m.negative_count)
        right_std = np.sqrt(m.positive_square_sum / m.positive_count)
        ratio = left_std / right_std
        mean_square = (m.negative_square_sum + m.positive_square_sum) / m.count
        r_hat = (m.abs_sum / m.count) ** 2 / mean_square
        r_hat_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    shape = SHAPE_GRID[_nearest_on_grid(AGGD_RATIO, r_hat_norm)]
    return shape, left_std, right_std


def fit_ggd_moments(moments: Moments) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Generalised Gaussian fit per block: (shape, variance), as BRISQUE's ``estimateggdparam.m``."""
    m = moments
    variance = (m.negative_square_sum + m.positive_square_sum) / m.count
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = variance / (m.abs_sum / m.count) ** 2
    # The GGD table decreases; negating both sides keeps distances and index order.
    shape = SHAPE_GRID[_nearest_on_grid(-GGD_RATIO, -rho)]
    return shape, variance


def fit_aggd(samples: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """AGGD fit of each row of a 2-D sample array (one fit for a 1-D vector): (shape, left std, right std)."""
    x = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    return fit_aggd_moments(aggd_moments(x, (1, x.shape[1])))


def fit_ggd(samples: NDArray[np.floating]) -> tuple[float, float]:
    """GGD fit of a sample vector: (shape, variance), as ``estimateggdparam.m``."""
    x = np.asarray(samples, dtype=np.float64).reshape(1, -1)
    shape, variance = fit_ggd_moments(aggd_moments(x, x.shape))
    return float(shape[0]), float(variance[0])
