"""Paired tests between models, checked against SciPy, a published worked example and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from iqabench.reports import significance as sig
from iqabench.reports.leaderboard import render_leaderboard
from iqabench.reports.schema import read_results
from iqabench.reports.significance import TIED
from iqabench.run.predictions import Prediction, PredictionStore


def test_williams_t_matches_a_published_worked_example():
    # bruceR's cor_diff documentation: r(X,Y) = .20, r(X,Z) = .45, r(Y,Z) = .80, N = 100
    # prints "t(97) = -4.56, p = 1e-05"
    t, p = sig.williams_t(0.20, 0.45, 0.80, 100)
    assert round(t, 2) == -4.56
    assert f"{p:.0e}" == "1e-05"


def test_williams_t_is_zero_for_equal_correlations_and_symmetric():
    assert sig.williams_t(0.6, 0.6, 0.5, 50) == (0.0, 1.0)
    t1, p1 = sig.williams_t(0.7, 0.5, 0.6, 80)
    t2, p2 = sig.williams_t(0.5, 0.7, 0.6, 80)
    assert t1 == pytest.approx(-t2) and p1 == pytest.approx(p2)
    with pytest.raises(ValueError, match="more than 3 images"):
        sig.williams_t(0.5, 0.4, 0.3, 3)


def test_bootstrap_p_value_by_hand():
    # 1 of 4 differences <= 0 and 3 >= 0: 2 * min((1 + 1) / 5, (3 + 1) / 5) = 0.8
    assert sig.bootstrap_p(np.array([-1.0, 0.5, 1.0, 2.0])) == pytest.approx(0.8)
    # all 999 above 0: 2 * (0 + 1) / 1000
    assert sig.bootstrap_p(np.full(999, 0.1)) == pytest.approx(0.002)
    assert sig.bootstrap_p(np.zeros(9)) == 1.0


def test_holm_and_bonferroni_by_hand():
    # sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; max(0.06, 1 x 0.04) = 0.06
    assert sig.adjust([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert sig.adjust([0.01, 0.04, 0.5], "bonferroni") == pytest.approx([0.03, 0.12, 1.0])
    assert sig.adjust([], "holm") == []


def data(seed: int = 0, n: int = 200):
    rng = np.random.default_rng(seed)
    mos = rng.uniform(1, 5, n)
    good = mos + rng.normal(0, 0.6, n)
    worse = mos + rng.normal(0, 1.6, n)
    return mos, good, worse


@pytest.mark.parametrize("metric", ["srcc", "plcc"])
def test_paired_bootstrap_interval_agrees_with_scipy(metric):
    mos, good, worse = data()
    a = sig.ModelScores("a", dict(enumerate(good)), dict(enumerate(mos)))
    b = sig.ModelScores("b", dict(enumerate(worse)), dict(enumerate(mos)))
    resampler = sig._Resampler(4000, 7, "none")
    comparison = sig.compare_pair(a, b, fit="none", resampler=resampler)
    ours = getattr(comparison, metric)
    def corr(x, y, axis=-1):  # along the last axis, as scipy's vectorized bootstrap calls it
        if metric == "srcc":
            x, y = stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis)
        return stats.pearsonr(x, y, axis=axis)[0]

    assert ours.difference == pytest.approx(corr(good, mos) - corr(worse, mos))
    reference = stats.bootstrap((good, worse, mos), lambda x, y, g, axis: corr(x, g, axis) - corr(y, g, axis),
                                paired=True, vectorized=True, n_resamples=4000, method="percentile", random_state=11)
    low, high = reference.confidence_interval
    # two independent Monte Carlo estimates of the same percentiles
    assert ours.low == pytest.approx(low, abs=0.02) and ours.high == pytest.approx(high, abs=0.02)
    assert ours.p_bootstrap < 0.01  # the interval is well above 0


def test_f_test_agrees_with_an_independent_scipy_fit():
    rng = np.random.default_rng(3)
    pred_a = rng.uniform(-3, 3, 150)
    mos = 1 + 4 / (1 + np.exp(-(pred_a - 0.3) / 0.9)) + rng.normal(0, 0.25, 150)
    pred_b = pred_a + rng.normal(0, 0.8, 150)

    def logistic(x, b1, b2, b3, b4):
        return (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4))) + b2

    def residual_variance(pred):
        params, _ = optimize.curve_fit(logistic, pred, mos, p0=[mos.max(), mos.min(), pred.mean(), pred.std() / 4],
                                       maxfev=10000)
        return np.var(mos - logistic(pred, *params), ddof=1)

    ratio = residual_variance(pred_a) / residual_variance(pred_b)
    p = 2 * min(stats.f.sf(ratio, 149, 149), stats.f.cdf(ratio, 149, 149))
    comparison = sig.compare_pair(sig.ModelScores("a", dict(enumerate(pred_a)), dict(enumerate(mos))),
                                  sig.ModelScores("b", dict(enumerate(pred_b)), dict(enumerate(mos))),
                                  fit="logistic4", resampler=None)
    assert comparison.plcc.f_ratio == pytest.approx(ratio, rel=1e-4)
    assert comparison.plcc.p_f_test == pytest.approx(p, rel=1e-3)
    assert comparison.plcc.f_ratio < 1 and comparison.plcc.p_f_test < 0.01  # b's residuals are larger


def test_williams_on_predictions_uses_the_correlation_between_the_models():
    mos, good, worse = data(1)
    comparison = sig.compare_pair(sig.ModelScores("a", dict(enumerate(good)), dict(enumerate(mos))),
                                  sig.ModelScores("b", dict(enumerate(worse)), dict(enumerate(mos))),
                                  fit="none", resampler=None)
    r12, r13, r23 = (stats.pearsonr(x, y)[0] for x, y in ((good, mos), (worse, mos), (good, worse)))
    assert comparison.plcc.williams_t == pytest.approx(sig.williams_t(r12, r13, r23, len(mos))[0])


def write_predictions(folder, key: str, test: str, mos, pred) -> None:
    rows = [Prediction(f"{i}.png", float(p), float(m), float(m)) for i, (m, p) in enumerate(zip(mos, pred))]
    PredictionStore(folder / "predictions" / key, test).write(rows, {"fingerprint": key})


def run_results(tmp_path, models: dict[str, np.ndarray], mos: np.ndarray) -> dict:
    pairs = []
    for key, pred in models.items():
        write_predictions(tmp_path, key, "t", mos, pred)
        pairs.append({"model": key, "test_set": "t", "status": "ok", "count": len(mos), "scored": len(mos),
                      "metrics": {"plcc": {"value": stats.pearsonr(pred, mos)[0]},
                                  "srcc": {"value": stats.spearmanr(pred, mos)[0]}}})
    return {"suite": {"name": "s", "bootstrap": 1000, "seed": 0, "correlation": "none",
                      "significance": {"alpha": 0.05, "correction": "holm", "plcc_test": "williams"}},
            "test_sets": [{"key": "t", "label": "T", "dataset": "t", "count": len(mos)}],
            "models": [{"key": key, "label": key.upper()} for key in models], "results": pairs}


def test_a_difference_smaller_than_the_noise_is_marked_tied_and_a_large_one_is_not(tmp_path):
    mos, good, worse = data(2, n=300)
    rng = np.random.default_rng(5)
    twin = good + rng.normal(0, 0.02, mos.size)  # differs from `good` far less than the MOS noise
    results = read_results(run_results(tmp_path, {"good": good, "twin": twin, "worse": worse}, mos))
    results.significance = sig.significance_record(results, tmp_path)
    record = results.significance.for_test("t")
    for metric in ("srcc", "plcc"):
        ranking = getattr(record, metric)
        assert ranking.best in {"good", "twin"}
        verdict = {o.model: o for o in ranking.others}
        other = ({"good", "twin"} - {ranking.best}).pop()
        assert verdict[other].tied and verdict[other].p_adjusted > 0.05
        assert not verdict["worse"].tied and verdict["worse"].p_adjusted < 0.01
    assert record.plcc.test == "williams" and record.srcc.test == "bootstrap"
    # Holm over the two comparisons with the best: the smaller p doubled, the larger kept (at least that)
    raw = sorted(o.p for o in record.srcc.others)
    assert sorted(o.p_adjusted for o in record.srcc.others) == pytest.approx([2 * raw[0], max(2 * raw[0], raw[1])])
    board = render_leaderboard(results)
    rows = {line.split("|")[1].strip(): line for line in board.splitlines() if line.startswith("| ")}
    assert TIED in rows[other.upper()] and TIED not in rows["WORSE"]
    assert "at α = 0.05" in board and "Williams' t" in board


def test_models_without_a_usable_metric_are_not_compared(tmp_path):
    mos, good, worse = data(4, n=50)
    raw = run_results(tmp_path, {"good": good, "worse": worse}, mos)
    raw["results"][1]["metrics"]["srcc"] = {"value": None, "flag": "predictions are constant"}
    results = read_results(raw)
    record = sig.significance_record(results, tmp_path).for_test("t")
    assert record.srcc.best == "good" and record.srcc.others == []
    assert [o.model for o in record.plcc.others] == ["worse"]
