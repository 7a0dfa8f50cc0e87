"""Correlation metrics as IQA papers report them, with honest edge cases.

``plcc(pred, gt, fit="none")`` is Pearson on raw predictions (pyiqa's
protocol); ``fit="logistic4"`` first maps predictions through the VQEG
four-parameter logistic fitted to the ground truth (DeQA-Score's protocol).
Correlations keep their sign: a model that ranks images backwards gets a
negative SRCC rather than having it hidden by ``abs()``. Models whose scores
are lower-is-better are negated by the caller before they get here.

Degenerate inputs (NaN, constant predictions, fewer than three pairs) give a
:class:`Metric` whose ``value`` is NaN and whose ``flag`` says why, never a
crash and never a silent 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

Fit = Literal["none", "logistic4"]
ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Metric:
    """A metric value, an optional 95% bootstrap interval, and why it may be missing."""

    value: float
    low: float | None = None
    high: float | None = None
    flag: str | None = None

    @property
    def ok(self) -> bool:
        return self.flag is None and math.isfinite(self.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG four-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -500, 500)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def _logistic4_jacobian(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # Analytic, because finite differences relative to a parameter near 0 (b3 starts at the mean
    # prediction, often ~0) take a zero step and freeze that parameter.
    scale = abs(b4) + 1e-12
    s = 1.0 / (1.0 + np.exp(np.clip(-(x - b3) / scale, -500, 500)))
    slope = (b1 - b2) * s * (1.0 - s)
    return np.stack([s, 1.0 - s, -slope / scale, -slope * (x - b3) * np.sign(b4 or 1.0) / scale**2], axis=1)


def logistic4_parameters(pred: np.ndarray, gt: np.ndarray) -> np.ndarray | None:
    """``(b1, b2, b3, b4)`` of the logistic fitted to ``gt``, or None if the fit fails (figures draw this curve)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    start = [float(np.max(gt)), float(np.min(gt)), float(np.mean(pred)), float(np.std(pred)) / 4.0 or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(
                logistic4, pred, gt, p0=start, jac=_logistic4_jacobian, maxfev=10000
            )
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    return params


def fit_logistic4(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Predictions mapped through the logistic fitted to ``gt``; the identity if the fit fails."""
    params = logistic4_parameters(pred, gt)
    return pred if params is None else logistic4(pred, *params)


def _pairs(pred: ArrayLike, gt: ArrayLike) -> tuple[np.ndarray, np.ndarray, str | None]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, dtype=np.float64).ravel()
    if p.shape != g.shape:
        raise ValueError(f"predictions ({p.size}) and ground truth ({g.size}) differ in length")
    if p.size < 3:
        return p, g, f"only {p.size} scored images; at least 3 are needed"
    if not np.all(np.isfinite(p)):
        return p, g, f"{int(np.sum(~np.isfinite(p)))} predictions are NaN or infinite"
    if not np.all(np.isfinite(g)):
        return p, g, "ground truth has NaN or infinite values"
    if np.ptp(p) == 0:
        return p, g, "predictions are constant"
    if np.ptp(g) == 0:
        return p, g, "ground truth is constant"
    return p, g, None


def _metric(pred: ArrayLike, gt: ArrayLike, compute) -> Metric:
    p, g, flag = _pairs(pred, gt)
    if flag:
        return Metric(value=float("nan"), flag=flag)
    return Metric(value=float(compute(p, g)))


def plcc(pred: ArrayLike, gt: ArrayLike, fit: Fit = "none") -> Metric:
    """Pearson linear correlation, on raw or logistic-fitted predictions."""
    if fit not in ("none", "logistic4"):
        raise ValueError(f"fit must be 'none' or 'logistic4', not {fit!r}")

    def compute(p: np.ndarray, g: np.ndarray) -> float:
        mapped = fit_logistic4(p, g) if fit == "logistic4" else p
        if np.ptp(mapped) == 0:
            return float("nan")
        return stats.pearsonr(mapped, g)[0]

    result = _metric(pred, gt, compute)
    if result.flag is None and not math.isfinite(result.value):
        return Metric(value=float("nan"), flag="the logistic fit collapsed to a constant")
    return result


def srcc(pred: ArrayLike, gt: ArrayLike) -> Metric:
    """Spearman rank-order correlation."""
    return _metric(pred, gt, lambda p, g: stats.spearmanr(p, g)[0])


def krcc(pred: ArrayLike, gt: ArrayLike) -> Metric:
    """Kendall rank correlation (tau-b)."""
    return _metric(pred, gt, lambda p, g: stats.kendalltau(p, g)[0])


def rmse(pred: ArrayLike, gt: ArrayLike, fit: Fit = "none") -> Metric:
    """Root-mean-square error, after the logistic mapping when ``fit="logistic4"``."""

    def compute(p: np.ndarray, g: np.ndarray) -> float:
        mapped = fit_logistic4(p, g) if fit == "logistic4" else p
        return float(np.sqrt(np.mean((mapped - g) ** 2)))

    return _metric(pred, gt, compute)


def bootstrap_interval(
    pred: ArrayLike, gt: ArrayLike, metric, *, resamples: int = 1000, seed: int = 0, **kwargs: Any
) -> tuple[float, float] | None:
    """Percentile 95% interval of ``metric`` over paired resamples (seeded, so reruns agree)."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if resamples <= 0 or p.size < 3:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, p.size, p.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = metric(p[idx], g[idx], **kwargs)
        if math.isfinite(m.value):
            values.append(m.value)
    if len(values) < resamples // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def evaluate(
    pred: ArrayLike, gt: ArrayLike, *, fit: Fit = "none", bootstrap: int = 1000, seed: int = 0
) -> dict[str, Metric]:
    """PLCC, SRCC, KRCC and RMSE with bootstrap intervals for PLCC and SRCC."""
    results = {
        "plcc": plcc(pred, gt, fit=fit),
        "srcc": srcc(pred, gt),
        "krcc": krcc(pred, gt),
        "rmse": rmse(pred, gt, fit=fit),
    }
    for name, function, kwargs in (("plcc", plcc, {"fit": fit}), ("srcc", srcc, {})):
        if results[name].ok and bootstrap:
            interval = bootstrap_interval(pred, gt, function, resamples=bootstrap, seed=seed, **kwargs)
            if interval:
                results[name] = Metric(results[name].value, interval[0], interval[1])
    return results
