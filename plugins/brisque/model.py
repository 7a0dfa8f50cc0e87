"""BRISQUE (Mittal, Moorthy & Bovik 2012) with LIVE's released regressor.

Features are computed by this project's code (:mod:`.features`), from a
MATLAB ``rgb2gray`` uint8 image as ``brisquescore.m`` does, and mapped to a
quality score by the LIVE-trained SVR (:mod:`.svr`). The SVR regresses LIVE
DMOS, so higher means worse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from iqabench.api import Model, ModelTraits, Score
from iqabench_plugins.brisque.svr import RbfSvr
from iqabench_plugins.nss.matlab import rgb2gray_uint8

# SciPy (the statistics in .features) is imported when a model is built.

#: The smallest side BRISQUE can describe: at the half scale (ceil(side / 2) pixels) at least one
#: pixel must see a whole 7x7 Gaussian window, so ceil(side / 2) >= 7. Below that every half-scale
#: statistic is dominated by the zero padding of ``filter2``.
MIN_SIDE = 13


class BRISQUE(Model):
    """BRISQUE with the LIVE MATLAB release SVR (trained on LIVE DMOS); lower is better.

    Parameters
    ----------
    svr:
        An ``.npz`` with ``sv, sv_coef, gamma, rho, feat_min, feat_range``
        (see ``MODEL-NOTICE.txt``); ``None`` loads the LIVE model shipped with iqabench.
    kernel:
        ``auto`` (numba-compiled statistics where numba is installed, else NumPy),
        ``numba`` or ``numpy``; the same scores either way (docs/niqe_brisque.md).
    device, dtype:
        Accepted for the common interface and ignored: BRISQUE always computes
        with NumPy in float64 on the CPU, and ``self.device`` / ``self.dtype`` /
        ``config()`` say so.
    """

    name: ClassVar[str] = "brisque"
    lower_better: ClassVar[bool] = True
    # The regressor was trained on LIVE DMOS, roughly 0 (pristine) to 100; being a regression it
    # can leave that range slightly (its own support vectors predict about -9 to 106).
    score_range: ClassVar[tuple[float, float]] = (0.0, 100.0)
    #: plain CPU work on its inputs: scored in the decode workers, on every core
    traits = ModelTraits(preprocessing="full-resolution", score_in_workers=True)

    def __init__(self, *, svr: str | None = None, kernel: str = "auto", device: str = "cpu",
                 dtype: str = "float32") -> None:
        # NumPy float64 on the CPU whatever is asked, so the efficiency table measures (and names)
        # the CPU and its memory, not an idle GPU.
        from iqabench_plugins.nss.statistics import resolve_kernel

        super().__init__(device="cpu", dtype="float64")
        self.svr = svr
        self.kernel = kernel
        self.computes_with = resolve_kernel(kernel)
        self.regressor = RbfSvr.load(svr)

    def preprocessor(self) -> Callable[[Image.Image], Any]:
        """MATLAB ``rgb2gray`` to uint8, in the decode workers."""
        return rgb2gray_uint8

    def score_batch(self, items: Sequence[NDArray[np.uint8]]) -> list[Score]:
        from iqabench_plugins.brisque.features import brisque_features

        scores: list[Score | None] = [None] * len(items)
        rows, positions = [], []
        for position, gray in enumerate(items):
            gray = np.asarray(gray)
            height, width = gray.shape[:2]
            if min(height, width) < MIN_SIDE:
                scores[position] = Score.failure(
                    f"image is {width}x{height}; BRISQUE needs at least {MIN_SIDE}x{MIN_SIDE} pixels "
                    f"(a whole 7x7 window at half scale)"
                )
                continue
            features = brisque_features(gray, self.computes_with)
            if not np.isfinite(features).all():
                scores[position] = Score.failure(
                    "BRISQUE is undefined for this image: it has no contrast for the statistics to fit "
                    "(e.g. a constant colour)"
                )
                continue
            rows.append(features)
            positions.append(position)
        if rows:
            for position, value in zip(positions, self.regressor.predict(np.stack(rows)), strict=True):
                scores[position] = Score.ok(float(value))
        return [score for score in scores if score is not None]

    def num_parameters(self) -> int:
        """Numbers in the SVR: 774x36 support vectors, 774 coefficients, gamma, rho, 72 scaling bounds."""
        return self.regressor.num_parameters

    def runtime_config(self) -> dict[str, Any]:
        return {
            "compute": "float64 on the cpu; the device and dtype options are ignored",
            "kernel": self.computes_with,
            "gray": "matlab-rgb2gray-uint8",
            "svr_source": self.svr or "LIVE BRISQUE release allmodel + allrange (float64)",
        }
