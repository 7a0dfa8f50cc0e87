"""The LIVE BRISQUE support-vector regressor, evaluated the way LIBSVM does.

The MATLAB release writes the 36 features, rescales them with
``svm-scale -r allrange`` and calls ``svm-predict`` on ``allmodel``. With the
arrays of ``live_svr.npz`` that is:

    scaled = -1 + 2 (x - feat_min) / feat_range         (svm-scale to [-1, 1])
    score  = sum_i sv_coef_i exp(-gamma |scaled - sv_i|^2) - rho

Both conventions are read off the data, not assumed: every one of the 36
columns of ``sv`` spans exactly [-1, 1] (the training features after this
scaling, so feat_range = max - min), and with LIBSVM's ``- rho`` (rho =
-153.591) the regressor reproduces LIVE DMOS-like values (about -9 to 106)
at its own support vectors, whereas ``+ rho`` would put them near -260.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

LIVE_SVR = "live_svr.npz"


@dataclass(frozen=True)
class RbfSvr:
    """An RBF epsilon-SVR with min-max feature scaling to [-1, 1]."""

    support_vectors: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    gamma: float
    rho: float
    feature_min: NDArray[np.float64]
    feature_range: NDArray[np.float64]

    @classmethod
    def load(cls, path: str | Path | None = None) -> RbfSvr:
        """From an npz with ``sv, sv_coef, gamma, rho, feat_min, feat_range``; LIVE's model by default."""
        source = resources.files(__package__).joinpath(LIVE_SVR) if path is None else Path(path)
        with source.open("rb") as handle, np.load(handle, allow_pickle=False) as arrays:
            missing = {"sv", "sv_coef", "gamma", "rho", "feat_min", "feat_range"} - set(arrays.files)
            if missing:
                raise ValueError(
                    f"{source} lacks {sorted(missing)}; see plugins/brisque/MODEL-NOTICE.txt for the format"
                )
            return cls(
                support_vectors=arrays["sv"].astype(np.float64),
                coefficients=arrays["sv_coef"].astype(np.float64).ravel(),
                gamma=float(arrays["gamma"]),
                rho=float(arrays["rho"]),
                feature_min=arrays["feat_min"].astype(np.float64),
                feature_range=arrays["feat_range"].astype(np.float64),
            )

    @property
    def num_parameters(self) -> int:
        """Support-vector entries, their coefficients, gamma, rho and the 2 x 36 scaling numbers."""
        scaling = self.feature_min.size + self.feature_range.size
        return int(self.support_vectors.size + self.coefficients.size + 2 + scaling)

    def scale(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        return -1.0 + 2.0 * (features - self.feature_min) / self.feature_range

    def predict(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores of raw (unscaled) feature rows, shape (n, 36) -> (n,)."""
        scaled = self.scale(np.atleast_2d(features))
        squared_distances = ((scaled[:, None, :] - self.support_vectors[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-self.gamma * squared_distances) @ self.coefficients - self.rho
