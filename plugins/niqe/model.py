"""NIQE (Mittal, Soundararajan & Bovik 2013) with the LIVE pristine model.

The score is the distance between a multivariate Gaussian fitted to the test
image's block features and the one fitted, once, to 125 pristine images by
LIVE (``modelparameters.mat`` of the MATLAB release, shipped in this folder
with its notice):

    sqrt((mu_p - mu_d) pinv((Sigma_p + Sigma_d) / 2) (mu_p - mu_d)^T)

with ``mu_d = nanmean`` and ``Sigma_d = nancov`` (rows holding a NaN dropped)
of the image's blocks. Nothing is learned on the benchmark's data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from iqabench.api import Model, ModelTraits, Score
from iqabench_plugins.nss.matlab import rgb2gray_uint8

# SciPy (the statistics in .features and iqabench_plugins.nss, the .mat reader) is imported when a model is built.

LIVE_PARAMETERS = "modelparameters.mat"
FEATURES = 36


def load_pristine_model(path: str | Path | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(mu 36, cov 36x36) from a NIQE ``.mat`` with ``mu_prisparam`` / ``cov_prisparam``; LIVE's by default."""
    import scipy.io

    source = resources.files(__package__).joinpath(LIVE_PARAMETERS) if path is None else Path(path)
    with source.open("rb") as handle:
        content = scipy.io.loadmat(handle)
    missing = {"mu_prisparam", "cov_prisparam"} - content.keys()
    if missing:
        raise ValueError(
            f"{source} lacks {sorted(missing)}; a NIQE model file holds mu_prisparam (1x36) and "
            "cov_prisparam (36x36) as written by LIVE's estimatemodelparam.m"
        )
    mu = np.asarray(content["mu_prisparam"], dtype=np.float64).ravel()
    cov = np.asarray(content["cov_prisparam"], dtype=np.float64)
    if mu.shape != (FEATURES,) or cov.shape != (FEATURES, FEATURES):
        raise ValueError(f"{source}: expected mu 1x36 and cov 36x36, got {mu.shape} and {cov.shape}")
    return mu, cov


def matlab_pinv(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Moore-Penrose inverse with MATLAB's default tolerance ``max(size) * eps * norm``."""
    return np.linalg.pinv(matrix, rtol=max(matrix.shape) * np.finfo(np.float64).eps)


def niqe_distance(
    features: NDArray[np.float64], pristine_mu: NDArray[np.float64], pristine_cov: NDArray[np.float64]
) -> float:
    """NIQE of one image's (n_blocks, 36) features; NaN when its Gaussian cannot be estimated."""
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return float("nan")
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False)
    difference = pristine_mu - mu
    return float(np.sqrt(difference @ matlab_pinv((pristine_cov + cov) / 2) @ difference))


class NIQE(Model):
    """NIQE, the LIVE MATLAB release (96x96 blocks, 2 scales, LIVE pristine model); lower is better.

    Parameters
    ----------
    pristine_model:
        A ``.mat`` with ``mu_prisparam`` / ``cov_prisparam``; ``None`` loads the
        LIVE model shipped with iqabench.
    block_size:
        Side of the square blocks at full scale (even; half of it at the second
        scale). The LIVE model was fitted with 96; change it only together with
        a model fitted at that size.
    kernel:
        ``auto`` (numba-compiled statistics where numba is installed, else NumPy),
        ``numba`` or ``numpy``. Both give the same scores (the MSCN coefficients
        bit for bit, the block sums to rounding: scores agree to about 1e-13);
        the compiled kernels are about 3x faster (docs/niqe_brisque.md).
    device, dtype:
        Accepted for the common interface and ignored: NIQE always computes
        with NumPy in float64 on the CPU, as the reference values require, and
        ``self.device`` / ``self.dtype`` / ``config()`` say so.
    """

    name: ClassVar[str] = "niqe"
    lower_better: ClassVar[bool] = True
    # NIQE is a distance, so >= 0; it has no upper bound. Natural photographs score about 2-20
    # (LIVE's examples: 2.66-17.87), so (0, 100) is the nominal range used for display.
    score_range: ClassVar[tuple[float, float]] = (0.0, 100.0)
    #: plain CPU work on its inputs: scored in the decode workers, on every core
    traits = ModelTraits(preprocessing="full-resolution", score_in_workers=True)

    def __init__(
        self,
        *,
        pristine_model: str | None = None,
        block_size: int = 96,
        kernel: str = "auto",
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        # NumPy float64 on the CPU whatever is asked, so the efficiency table measures (and names)
        # the CPU and its memory, not an idle GPU.
        from iqabench_plugins.nss.statistics import resolve_kernel

        super().__init__(device="cpu", dtype="float64")
        if block_size < 2 or block_size % 2:
            raise ValueError(f"block_size must be an even number of pixels (two scales halve it), got {block_size}")
        self.pristine_model = pristine_model
        self.block_size = block_size
        self.kernel = kernel
        self.computes_with = resolve_kernel(kernel)
        self.pristine_mu, self.pristine_cov = load_pristine_model(pristine_model)

    def preprocessor(self) -> Callable[[Image.Image], Any]:
        """MATLAB ``rgb2gray`` to uint8, in the decode workers."""
        return rgb2gray_uint8

    def score_batch(self, items: Sequence[NDArray[np.uint8]]) -> list[Score]:
        return [self._score_one(np.asarray(gray)) for gray in items]

    def _score_one(self, gray: NDArray[np.uint8]) -> Score:
        from iqabench_plugins.niqe.features import SCALES, niqe_features

        height, width = gray.shape[:2]
        blocks = (height // self.block_size) * (width // self.block_size)
        if blocks < 2:
            return Score.failure(
                f"image is {width}x{height}; NIQE needs at least two whole {self.block_size}x{self.block_size} "
                f"blocks (minimum {2 * self.block_size}x{self.block_size} or {self.block_size}x{2 * self.block_size}) "
                f"to fit its {SCALES}-scale block Gaussian"
            )
        value = niqe_distance(niqe_features(gray, self.block_size, self.computes_with), self.pristine_mu,
                              self.pristine_cov)
        if not np.isfinite(value):
            return Score.failure(
                "NIQE is undefined for this image: fewer than two blocks have finite statistics "
                "(flat, constant-colour blocks have no contrast to fit)"
            )
        return Score.ok(value)

    def num_parameters(self) -> int:
        """The fitted prior: 36 means + 36x36 covariance entries = 1332 numbers (none learned by gradient)."""
        return int(self.pristine_mu.size + self.pristine_cov.size)

    def runtime_config(self) -> dict[str, Any]:
        from iqabench_plugins.niqe.features import SCALES

        return {
            "compute": "float64 on the cpu; the device and dtype options are ignored",
            "kernel": self.computes_with,
            "gray": "matlab-rgb2gray-uint8",
            "scales": SCALES,
            "pristine_model_source": self.pristine_model or "LIVE modelparameters.mat (2012)",
        }
