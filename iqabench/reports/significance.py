"""Whether the difference between two models on one test set is real: paired tests on the same images.

Two models' correlations with the MOS of one test set are computed on the same images, so they are not
independent and the tests must be paired:

- **paired bootstrap** (SRCC and PLCC): the images both models scored are resampled with replacement, the same
  resample for both models, and the difference of the metric is recomputed on each resample. The 95% interval is
  the 2.5 and 97.5 percentiles of those differences; the two-sided p-value is the smallest level at which the
  matching percentile interval leaves out 0: ``2 * min(#{d <= 0} + 1, #{d >= 0} + 1) / (B + 1)``, at most 1.
  With ``correlation: logistic4`` the logistic is refitted on every resample, as for the intervals of one model.
- **Williams' t** (PLCC): the test for two dependent correlations that share one variable (here the MOS),
  Steiger's (1980) recommended form of Williams (1959):
  ``t = (r12 - r13) * sqrt((n - 1)(1 + r23) / (2 (n - 1)/(n - 3) |R| + rbar^2 (1 - r23)^3))`` with
  ``|R| = 1 - r12^2 - r13^2 - r23^2 + 2 r12 r13 r23`` and ``rbar = (r12 + r13) / 2``, on n - 3 degrees of
  freedom. ``r12`` and ``r13`` are the two models' PLCCs as the leaderboard reports them (after the logistic with
  ``logistic4``) and ``r23`` the correlation between the two models' (mapped) predictions.
- **F-test on residuals** (PLCC, the VQEG's test): each model's predictions are mapped through its fitted
  4-parameter logistic, and the ratio of the variances of the residuals (MOS minus mapped prediction) is
  compared with an F distribution on (n - 1, n - 1) degrees of freedom, two-sided. It treats the two residual
  series as independent, which they are not (same images); it is offered because the VQEG reports and many
  papers use it.

Per test set, every pair of models that both have a usable metric is compared, and each model is compared with
the best (the bold one in the table). Those m - 1 comparisons are corrected for multiplicity (Holm by default,
or Bonferroni); a model whose corrected p-value is at least ``alpha`` is marked as not significantly different
from the best. SRCC is always decided by the paired bootstrap; the suite's ``significance.plcc_test`` says which
test decides PLCC. Everything is seeded, so a rerun or a merge of partial runs gives the same p-values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from iqabench.reports import metrics
from iqabench.reports.schema import (
    Difference,
    MetricRanking,
    PairwiseComparison,
    Results,
    SignificanceRecord,
    TestSetSignificance,
    VersusBest,
)
from iqabench.run.layout import RunLayout
from iqabench.run.suite import SignificanceSpec

#: after a value not significantly different from the best of its column
TIED = "†"

#: resamples are processed in blocks of this many, to bound memory on large test sets
_BLOCK = 64


# ----------------------------------------------------------------------------------------------- the statistics


def williams_t(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t (Steiger 1980, eq. 7) for H0: rho12 = rho13, and its two-sided p-value on n - 3 df."""
    if n <= 3:
        raise ValueError(f"Williams' test needs more than 3 images, not {n}")
    determinant = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    mean = (r12 + r13) / 2
    denominator = 2 * (n - 1) / (n - 3) * determinant + mean**2 * (1 - r23) ** 3
    if denominator <= 0:
        raise ValueError("the correlations are degenerate (the two models' predictions are collinear)")
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23) / denominator)
    return t, float(2 * stats.t.sf(abs(t), n - 3))


def variance_ratio_test(residuals_a: np.ndarray, residuals_b: np.ndarray) -> tuple[float, float]:
    """The ratio of the residual variances (A over B) and its two-sided p-value under F(n_a - 1, n_b - 1)."""
    a = np.asarray(residuals_a, dtype=np.float64)
    b = np.asarray(residuals_b, dtype=np.float64)
    ratio = float(np.var(a, ddof=1) / np.var(b, ddof=1))
    dfa, dfb = a.size - 1, b.size - 1
    p = 2 * min(stats.f.sf(ratio, dfa, dfb), stats.f.cdf(ratio, dfa, dfb))
    return ratio, float(min(1.0, p))


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p-value of a percentile bootstrap: the smallest level whose interval leaves out 0."""
    d = np.asarray(differences, dtype=np.float64)
    below = (np.count_nonzero(d <= 0) + 1) / (d.size + 1)
    above = (np.count_nonzero(d >= 0) + 1) / (d.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Holm's step-down or Bonferroni adjusted p-values, in the input order."""
    m = len(p_values)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in p_values]
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}; expected holm or bonferroni")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x ``n`` image indices drawn with replacement (seeded): one row per bootstrap resample."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the matching row of ``y``; NaN for a constant row."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))


def resampled_metric(pred: np.ndarray, gt: np.ndarray, indices: np.ndarray, metric: str, fit: str) -> np.ndarray:
    """``metric`` ("srcc" or "plcc") of ``pred`` against ``gt`` on every resample (row) of ``indices``; NaN where
    a resample is degenerate (constant, or a logistic that does not fit)."""
    out = np.empty(indices.shape[0])
    for start in range(0, indices.shape[0], _BLOCK):
        block = indices[start:start + _BLOCK]
        p, g = pred[block], gt[block]
        if metric == "srcc":
            out[start:start + len(block)] = _row_pearson(stats.rankdata(p, axis=1), stats.rankdata(g, axis=1))
        elif fit == "none":
            out[start:start + len(block)] = _row_pearson(p, g)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[start:start + len(block)] = [metrics.plcc(pr, gr, fit=fit).value for pr, gr in zip(p, g)]
    return out


# ----------------------------------------------------------------------------------------------- one pair


@dataclass
class ModelScores:
    """One model's sign-corrected predictions and the MOS, by row of the test set (every model's prediction file
    lists the test set's images in the same order), for the rows it scored."""

    key: str
    prediction: dict[int, float]
    mos: dict[int, float]


def _mapped(pred: np.ndarray, gt: np.ndarray, fit: str) -> np.ndarray:
    """The predictions PLCC correlates with the MOS, signed like the reported PLCC."""
    if fit == "none":
        return pred
    params, direction = metrics.logistic4_fit(pred, gt)
    return direction * metrics.logistic4(direction * pred, *params)


def _residuals(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    params, direction = metrics.logistic4_fit(pred, gt)
    return gt - metrics.logistic4(direction * pred, *params)


class _Resampler:
    """Bootstrap metric vectors, computed once per (model, set of images) and shared by every pair using them."""

    def __init__(self, resamples: int, seed: int, fit: str) -> None:
        self.resamples, self.seed, self.fit = resamples, seed, fit
        self._cache: dict[tuple[str, tuple[int, ...], str], np.ndarray] = {}
        self._indices: dict[int, np.ndarray] = {}

    def values(self, model: ModelScores, images: tuple[int, ...], metric: str) -> np.ndarray:
        key = (model.key, images, metric)
        if key not in self._cache:
            n = len(images)
            if n not in self._indices:
                self._indices[n] = resample_indices(n, self.resamples, self.seed)
            pred = np.array([model.prediction[i] for i in images])
            gt = np.array([model.mos[i] for i in images])
            self._cache[key] = resampled_metric(pred, gt, self._indices[n], metric, self.fit)
        return self._cache[key]


def compare_pair(a: ModelScores, b: ModelScores, *, fit: str, resampler: _Resampler | None) -> PairwiseComparison:
    """Every test between two models on the images both scored (in a fixed, sorted order)."""
    images = tuple(sorted(set(a.prediction) & set(b.prediction)))
    n = len(images)
    pa = np.array([a.prediction[i] for i in images])
    pb = np.array([b.prediction[i] for i in images])
    gt = np.array([a.mos[i] for i in images])
    result = {}
    for metric in ("srcc", "plcc"):
        difference = Difference()
        va = metrics.srcc(pa, gt) if metric == "srcc" else metrics.plcc(pa, gt, fit=fit)
        vb = metrics.srcc(pb, gt) if metric == "srcc" else metrics.plcc(pb, gt, fit=fit)
        if not (va.ok and vb.ok):
            difference.flag = va.flag or vb.flag or "not computed"
            result[metric] = difference
            continue
        difference.a, difference.b, difference.difference = va.value, vb.value, va.value - vb.value
        if resampler is not None and n >= 3:
            d = resampler.values(a, images, metric) - resampler.values(b, images, metric)
            d = d[np.isfinite(d)]
            if d.size >= resampler.resamples // 2:
                difference.low, difference.high = (float(v) for v in np.percentile(d, [2.5, 97.5]))
                difference.p_bootstrap = bootstrap_p(d)
        if metric == "plcc":
            _parametric_tests(difference, pa, pb, gt, fit)
        result[metric] = difference
    return PairwiseComparison(a=a.key, b=b.key, images=n, srcc=result["srcc"], plcc=result["plcc"])


def _parametric_tests(difference: Difference, pa: np.ndarray, pb: np.ndarray, gt: np.ndarray, fit: str) -> None:
    """Williams' t and the F-test on residuals, each left out (with a flag) when it cannot be made."""
    problems = []
    try:
        r23 = float(stats.pearsonr(_mapped(pa, gt, fit), _mapped(pb, gt, fit))[0])
        difference.williams_t, difference.p_williams = williams_t(difference.a, difference.b, r23, pa.size)
    except (ValueError, TypeError, metrics.FitError) as exc:  # TypeError: fewer images than fit parameters
        problems.append(f"Williams' test: {exc}")
    try:
        difference.f_ratio, difference.p_f_test = variance_ratio_test(_residuals(pa, gt), _residuals(pb, gt))
    except (ValueError, TypeError, metrics.FitError) as exc:
        problems.append(f"F-test: {exc}")
    if problems:
        difference.flag = "; ".join(problems)


# ----------------------------------------------------------------------------------------------- a test set


def rank_against_best(values: Mapping[str, float], comparisons: Sequence[PairwiseComparison], metric: str,
                      test: str, alpha: float, correction: str) -> MetricRanking:
    """The best model on ``metric`` and, for each other, the corrected p-value of its difference to the best."""
    ranking = MetricRanking(test=test)
    if not values:
        return ranking
    best = max(values, key=lambda key: values[key])  # the first of equals, in suite order
    ranking.best = best
    others, raw = [], []
    for model in values:
        if model == best:
            continue
        pair = next((c for c in comparisons if {c.a, c.b} == {best, model}), None)
        p = None if pair is None else getattr(pair, metric).p(test)
        others.append(VersusBest(model=model, p=p))
        raw.append(p)
    known = [i for i, p in enumerate(raw) if p is not None]
    for index, adjusted in zip(known, adjust([raw[i] for i in known], correction)):
        others[index].p_adjusted = adjusted
        others[index].tied = adjusted >= alpha
    ranking.others = others
    return ranking


def compare_models(scores: Sequence[ModelScores], values: Mapping[str, Mapping[str, float]], *, test_set: str,
                   fit: str, resamples: int, seed: int, alpha: float, correction: str,
                   plcc_test: str) -> TestSetSignificance:
    """Every pairwise comparison on one test set, and each metric's best with the models tied with it.

    ``values`` maps "plcc" and "srcc" to the leaderboard's value of each model that has a usable one (suite
    order); only those models are compared on that metric.
    """
    resampler = _Resampler(resamples, seed, fit) if resamples > 0 else None
    comparisons = [compare_pair(a, b, fit=fit, resampler=resampler)
                   for i, a in enumerate(scores) for b in scores[i + 1:]]
    return TestSetSignificance(
        test_set=test_set,
        srcc=rank_against_best(values.get("srcc", {}), comparisons, "srcc", "bootstrap", alpha, correction),
        plcc=rank_against_best(values.get("plcc", {}), comparisons, "plcc", plcc_test, alpha, correction),
        pairs=comparisons,
    )


def significance_record(results: Results, run_dir: str | Path) -> SignificanceRecord:
    """The comparisons of every test set of a run, from its prediction files (what ``results.json`` records)."""
    suite = results.suite
    spec = suite.significance or SignificanceSpec()
    record = SignificanceRecord(resamples=suite.bootstrap, seed=suite.seed)
    for test in results.test_sets:
        values: dict[str, dict[str, float]] = {"plcc": {}, "srcc": {}}
        scores = []
        for model in results.models:
            pair = results.pair(model.key, test.key)
            if pair is None or pair.status != "ok":
                continue
            for metric in ("plcc", "srcc"):
                if pair.metric(metric) is not None:
                    values[metric][model.key] = pair.metric(metric)
            if any(model.key in v for v in values.values()):
                found = read_scores(Path(run_dir), model.key, test.key, pair.sign)
                if found is not None:
                    scores.append(found)
                else:
                    for v in values.values():
                        v.pop(model.key, None)
        if len(scores) < 2:
            continue
        record.test_sets.append(compare_models(
            scores, values, test_set=test.key, fit=suite.correlation, resamples=suite.bootstrap, seed=suite.seed,
            alpha=spec.alpha, correction=spec.correction, plcc_test=spec.plcc_test))
    return record


def read_scores(run_dir: Path, model: str, test: str, sign: float) -> ModelScores | None:
    """A model's scored rows of a test set from its prediction file (lower-is-better negated by ``sign``)."""
    store = RunLayout(run_dir).predictions(model, test)
    if not store.csv_path.exists():
        return None
    rows = [(i, r) for i, r in enumerate(store.read()) if r.prediction is not None]
    return ModelScores(model, {i: sign * r.prediction for i, r in rows}, {i: r.mos for i, r in rows})


# ----------------------------------------------------------------------------------------------- how marks read


PLCC_TESTS = {
    "bootstrap": "paired bootstrap",
    "williams": "Williams' t for dependent correlations",
    "f_test": "F-test on the residuals after the fitted logistic (VQEG)",
}


def significance_legend(results: Results) -> str | None:
    """What the mark means: the level, the tests and the correction."""
    spec = results.suite.significance
    if results.significance is None or spec is None:
        return None
    return (f"{TIED} not significantly different from the best of its column at α = {spec.alpha:g} "
            f"(SRCC: paired bootstrap, {results.significance.resamples} resamples of the images both models scored; "
            f"PLCC: {PLCC_TESTS[spec.plcc_test]}; {spec.correction.capitalize()} correction over the comparisons "
            "with the best). Every p-value is in `results.json` (`significance`).")


def tied_models(results: Results, test_key: str | None) -> dict[str, set[str]]:
    """Per metric, the models of a test set not significantly different from its best (the best left out)."""
    record = results.significance.for_test(test_key) if results.significance and test_key else None
    if record is None:
        return {"plcc": set(), "srcc": set()}
    return {metric: getattr(record, metric).tied_with_best() - {getattr(record, metric).best}
            for metric in ("plcc", "srcc")}
