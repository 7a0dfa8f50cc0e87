"""The LIVE BRISQUE support-vector regressor, evaluated the way the release does.

``brisquescore.m`` does not call LIBSVM in memory: it writes the 36 features
to a text file with MATLAB ``fprintf('%f')`` (6 decimals), rescales them with
``svm-scale -r allrange`` (which prints the scaled values with ``%g``, 6
significant digits) and runs ``svm-predict`` on ``allmodel``. Both roundings
are part of the release's numbers (about 1e-3 relative on a score near 0),
so :meth:`RbfSvr.predict` applies them, then

    scaled = -1 + 2 (x - feat_min) / (feat_max - feat_min)     (svm-scale to [-1, 1])
    score  = sum_i sv_coef_i exp(-gamma |scaled - sv_i|^2) - rho

The final ``%g`` of ``svm-predict``'s output file is not applied: it only
truncates the score to 6 significant digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

LIVE_SVR = "live_svr.npz"


def matlab_fprintf_f(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """What ``fprintf('%f')`` writes and ``strtod`` reads back: each value rounded to 6 decimals."""
    return np.array([float(f"{value:f}") for value in np.ravel(values)]).reshape(np.shape(values))


def printf_g(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """What ``printf("%g")`` writes and ``strtod`` reads back: 6 significant digits."""
    return np.array([float(f"{value:g}") for value in np.ravel(values)]).reshape(np.shape(values))


@dataclass(frozen=True)
class RbfSvr:
    """An RBF epsilon-SVR with LIBSVM ``svm-scale`` min-max scaling to [-1, 1]."""

    support_vectors: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    gamma: float
    rho: float
    feature_min: NDArray[np.float64]
    feature_max: NDArray[np.float64]

    @classmethod
    def load(cls, path: str | Path | None = None) -> RbfSvr:
        """From an npz with ``sv, sv_coef, gamma, rho, feat_min, feat_max``; LIVE's model by default.

        An npz with ``feat_range`` (= max - min) instead of ``feat_max`` is read too.
        """
        source = resources.files(__package__).joinpath(LIVE_SVR) if path is None else Path(path)
        with source.open("rb") as handle, np.load(handle, allow_pickle=False) as arrays:
            missing = {"sv", "sv_coef", "gamma", "rho", "feat_min"} - set(arrays.files)
            if not {"feat_max", "feat_range"} & set(arrays.files):
                missing.add("feat_max (or feat_range)")
            if missing:
                raise ValueError(
                    f"{source} lacks {sorted(missing)}; see plugins/brisque/MODEL-NOTICE.txt "
                    "for the format"
                )
            feature_min = arrays["feat_min"].astype(np.float64)
            if "feat_max" in arrays.files:
                feature_max = arrays["feat_max"].astype(np.float64)
            else:
                feature_max = feature_min + arrays["feat_range"].astype(np.float64)
            return cls(
                support_vectors=arrays["sv"].astype(np.float64),
                coefficients=arrays["sv_coef"].astype(np.float64).ravel(),
                gamma=float(arrays["gamma"]),
                rho=float(arrays["rho"]),
                feature_min=feature_min,
                feature_max=feature_max,
            )

    @property
    def num_parameters(self) -> int:
        """Support-vector entries, their coefficients, gamma, rho and the 2 x 36 scaling numbers."""
        scaling = self.feature_min.size + self.feature_max.size
        return int(self.support_vectors.size + self.coefficients.size + 2 + scaling)

    def scale(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """``svm-scale`` to [-1, 1]: the bounds map exactly to -1 and 1, the rest linearly."""
        low, high = self.feature_min, self.feature_max
        scaled = -1.0 + 2.0 * (features - low) / (high - low)
        return np.where(features == low, -1.0, np.where(features == high, 1.0, scaled))

    def predict(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores of raw feature rows, shape (n, 36) -> (n,), through the release's text round trip."""
        written = matlab_fprintf_f(np.atleast_2d(features))
        scaled = printf_g(self.scale(written))
        squared_distances = ((scaled[:, None, :] - self.support_vectors[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-self.gamma * squared_distances) @ self.coefficients - self.rho
