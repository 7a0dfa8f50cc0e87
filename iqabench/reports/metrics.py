"""Correlation metrics as IQA papers report them, with honest edge cases.

``plcc(pred, gt, fit="none")`` is Pearson on raw predictions (pyiqa's
protocol); ``fit="logistic4"`` first maps predictions through the VQEG
four-parameter logistic fitted to the ground truth (DeQA-Score's
``cal_plcc_srcc.py``: ``scipy.optimize.curve_fit``, ``maxfev=10000``, start
``[max(gt), min(gt), mean(pred), std(pred) / 4]``).

Correlations keep their sign: a model that ranks images backwards gets a
negative SRCC rather than having it hidden by ``abs()``. Models whose scores
are lower-is-better are negated by the caller before they get here. The
logistic fit would hide that sign: fitted freely, it turns decreasing for an
anti-correlated model, and the PLCC of the mapped predictions is positive
while SRCC is negative. The VQEG asks for a *monotonic* mapping, so the fit
here is monotone in the direction of the raw predictions (the sign of their
linear correlation with the ground truth): it is fitted to ``s * pred``
(``s`` = +1 or -1) as an increasing logistic, and the reported PLCC is ``s``
times the Pearson correlation of the mapped predictions. For every model
that correlates positively (all those DeQA-Score reports) this is exactly
DeQA-Score's number; for an anti-correlated one it is the same magnitude with
the sign of its SRCC. A fit that does not converge, or converges to a mapping
that runs against the raw direction (a non-monotone relation), is a failure:
the metric is NaN with a ``flag`` saying why, never raw PLCC in disguise.

Degenerate inputs (NaN, constant predictions, fewer than three pairs) give a
:class:`Metric` whose ``value`` is NaN and whose ``flag`` says why, never a
crash and never a silent 0. "Constant" allows for float noise: a model that
returns the same score up to the last bits (60.64560257037 and
60.64560257033) has no ranking to correlate; see :func:`is_constant`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

Fit = Literal["none", "logistic4"]
ArrayLike = Sequence[float] | np.ndarray

#: spread below this fraction of the score magnitude is float noise, not a ranking. float32 carries about
#: 7 significant digits (relative step 6e-8), and a model's arithmetic (batch-dependent kernels, casts)
#: compounds a few such steps; real differences in quality are many orders of magnitude larger.
CONSTANT_RTOL = 1e-6


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


class FitError(ValueError):
    """The logistic mapping could not be fitted; the message says why."""


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG four-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``; increasing iff b1 > b2."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -500, 500)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def _logistic4_jacobian(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # Analytic, because finite differences relative to a parameter near 0 (b3 starts at the mean
    # prediction, often ~0) take a zero step and freeze that parameter.
    scale = abs(b4) + 1e-12
    s = 1.0 / (1.0 + np.exp(np.clip(-(x - b3) / scale, -500, 500)))
    slope = (b1 - b2) * s * (1.0 - s)
    return np.stack([s, 1.0 - s, -slope / scale, -slope * (x - b3) * np.sign(b4 or 1.0) / scale**2], axis=1)


def raw_direction(pred: np.ndarray, gt: np.ndarray) -> float:
    """+1 when the predictions correlate (linearly) non-negatively with the ground truth, else -1."""
    return -1.0 if stats.pearsonr(pred, gt)[0] < 0 else 1.0


def logistic4_fit(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, float]:
    """``((b1, b2, b3, b4), direction)``: the logistic of ``direction * pred`` fitted to ``gt``.

    The one fit behind PLCC and the curve the figures draw. Raises
    :class:`FitError` when the fit does not converge, gives non-finite values,
    collapses to a constant, or runs against the raw direction.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    direction = raw_direction(pred, gt)
    x = direction * pred
    start = [float(np.max(gt)), float(np.min(gt)), float(np.mean(x)), float(np.std(x)) / 4.0 or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic4, x, gt, p0=start, jac=_logistic4_jacobian, maxfev=10000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning) as exc:
        raise FitError(f"logistic fit did not converge ({str(exc).splitlines()[0]})") from None
    mapped = logistic4(x, *params)
    if not np.all(np.isfinite(params)) or not np.all(np.isfinite(mapped)):
        raise FitError("logistic fit gave non-finite values")
    if params[0] < params[1]:
        raise FitError("logistic fit runs against the raw correlation (non-monotone relation)")
    if is_constant(mapped):
        raise FitError("logistic fit collapsed to a constant")
    return params, direction


def fit_logistic4(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Predictions mapped through the logistic fitted to ``gt``, monotone in the raw direction
    (:func:`logistic4_fit`)."""
    params, direction = logistic4_fit(pred, gt)
    return logistic4(direction * np.asarray(pred, dtype=np.float64), *params)


def is_constant(values: np.ndarray) -> bool:
    """True when the spread of ``values`` is float noise relative to their magnitude (:data:`CONSTANT_RTOL`)."""
    values = np.asarray(values, dtype=np.float64)
    scale = max(float(np.max(np.abs(values))), np.finfo(np.float64).tiny)
    return float(np.ptp(values)) <= CONSTANT_RTOL * scale


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
    if is_constant(p):
        return p, g, "predictions are constant (up to float noise)"
    if is_constant(g):
        return p, g, "ground truth is constant"
    return p, g, None


def _metric(pred: ArrayLike, gt: ArrayLike, compute: Callable[[np.ndarray, np.ndarray], float]) -> Metric:
    p, g, flag = _pairs(pred, gt)
    if flag:
        return Metric(value=float("nan"), flag=flag)
    try:
        return Metric(value=float(compute(p, g)))
    except FitError as exc:
        return Metric(value=float("nan"), flag=str(exc))


def _check_fit(fit: str) -> None:
    if fit not in ("none", "logistic4"):
        raise ValueError(f"fit must be 'none' or 'logistic4', not {fit!r}")


def plcc(pred: ArrayLike, gt: ArrayLike, fit: Fit = "none") -> Metric:
    """Pearson linear correlation, on raw or logistic-fitted predictions, signed as the raw predictions."""
    _check_fit(fit)

    def compute(p: np.ndarray, g: np.ndarray) -> float:
        if fit == "none":
            return stats.pearsonr(p, g)[0]
        return raw_direction(p, g) * stats.pearsonr(fit_logistic4(p, g), g)[0]

    return _metric(pred, gt, compute)


def srcc(pred: ArrayLike, gt: ArrayLike) -> Metric:
    """Spearman rank-order correlation."""
    return _metric(pred, gt, lambda p, g: stats.spearmanr(p, g)[0])


def krcc(pred: ArrayLike, gt: ArrayLike) -> Metric:
    """Kendall rank correlation (tau-b)."""
    return _metric(pred, gt, lambda p, g: stats.kendalltau(p, g)[0])


def rmse(pred: ArrayLike, gt: ArrayLike, fit: Fit = "none") -> Metric:
    """Root-mean-square error, after the logistic mapping when ``fit="logistic4"``."""
    _check_fit(fit)

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
