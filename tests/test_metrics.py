"""Metrics against formulas computed independently in the test."""

import math

import numpy as np
import pytest

from iqabench.reports import metrics


def test_plcc_is_pearson_by_hand():
    x = np.array([1.0, 2.0, 3.0, 5.0])
    y = np.array([1.0, 3.0, 2.0, 5.0])
    xm, ym = x - x.mean(), y - y.mean()
    expected = (xm * ym).sum() / math.sqrt((xm**2).sum() * (ym**2).sum())
    assert metrics.plcc(list(x), list(y)).value == pytest.approx(expected)


def test_srcc_and_krcc_by_hand():
    pred = [0.1, 0.4, 0.3, 0.9]
    gt = [1, 2, 3, 4]
    # ranks of pred: 1, 3, 2, 4 -> d = 0, 1, -1, 0 -> 1 - 6*2/(4*15)
    assert metrics.srcc(pred, gt).value == pytest.approx(1 - 6 * 2 / (4 * 15))
    # 6 pairs, one discordant (0.4, 0.3): (5 - 1) / 6
    assert metrics.krcc(pred, gt).value == pytest.approx(4 / 6)


def test_correlations_keep_their_sign():
    assert metrics.srcc([3, 2, 1], [1, 2, 3]).value == pytest.approx(-1.0)
    assert metrics.plcc([3, 2, 1], [1, 2, 3]).value == pytest.approx(-1.0)


def test_logistic4_fit_linearises_a_sigmoid_relation():
    x = np.linspace(-4, 4, 40)
    gt = metrics.logistic4(x, 5.0, 1.0, 0.5, 0.8)
    raw = metrics.plcc(x, gt).value
    fitted = metrics.plcc(x, gt, fit="logistic4").value
    assert raw < 0.97
    assert fitted == pytest.approx(1.0, abs=1e-6)


def test_rmse_by_hand():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]).value == pytest.approx(math.sqrt(4 / 3))


@pytest.mark.parametrize(
    "pred, reason",
    [([1, 1, 1, 1], "constant"), ([1, float("nan"), 2, 3], "NaN"), ([1, 2], "at least 3")],
)
def test_degenerate_inputs_are_flagged_not_zero(pred, reason):
    gt = list(range(len(pred)))
    result = metrics.plcc(pred, gt)
    assert math.isnan(result.value) and reason in result.flag
    assert not result.ok


def test_constant_ground_truth_is_flagged():
    assert "ground truth is constant" in metrics.srcc([1, 2, 3], [2, 2, 2]).flag


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=200)
    pred = gt + rng.normal(scale=0.5, size=200)
    a = metrics.evaluate(pred, gt, bootstrap=200, seed=3)
    b = metrics.evaluate(pred, gt, bootstrap=200, seed=3)
    assert a["plcc"].low < a["plcc"].value < a["plcc"].high
    assert a == b


def test_lengths_must_match():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.plcc([1, 2, 3], [1, 2])


# ----------------------------------------------------------------------------------- logistic fit and its sign


def deqa_fitted_plcc(pred, gt):
    """DeQA-Score's cal_plcc_srcc.py protocol, written out: free 4-parameter logistic, then Pearson.

    Returns the PLCC and whether the fitted curve increases.
    """
    from scipy.optimize import curve_fit
    from scipy.stats import pearsonr

    def logistic(x, b1, b2, b3, b4):
        return (b1 - b2) / (1 + np.exp(-(x - b3) / b4)) + b2

    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    betas, _ = curve_fit(logistic, pred, gt, p0=[gt.max(), gt.min(), pred.mean(), pred.std() / 4], maxfev=10000)
    increasing = (betas[0] - betas[1]) * betas[3] > 0
    return pearsonr(logistic(pred, *betas), gt)[0], increasing


def noisy_model(sign, n=400, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(1, 5, n)
    pred = sign * np.tanh(0.5 * (gt - 3) + rng.normal(scale=0.3, size=n))  # monotone but not linear, plus noise
    return pred, gt


def test_logistic4_matches_deqa_score_for_a_positively_correlated_model():
    pred, gt = noisy_model(+1)
    expected, increasing = deqa_fitted_plcc(pred, gt)
    assert increasing
    assert metrics.plcc(pred, gt, fit="logistic4").value == pytest.approx(expected, abs=1e-6)


def test_logistic4_keeps_the_sign_of_an_anti_correlated_model():
    pred, gt = noisy_model(-1)
    free, increasing = deqa_fitted_plcc(pred, gt)
    assert not increasing and free > 0.8  # the free fit turns the curve around and hides the sign
    result = metrics.evaluate(pred, gt, fit="logistic4", bootstrap=100)
    assert result["srcc"].value < -0.8
    assert result["plcc"].value == pytest.approx(-free, abs=1e-6)
    assert result["plcc"].high < 0  # the bootstrap interval keeps the sign too
    # the same model with its scores negated (what the runner does for lower-is-better models) is the mirror image
    assert metrics.plcc(-pred, gt, fit="logistic4").value == pytest.approx(free, abs=1e-6)


def test_a_fit_that_does_not_converge_is_flagged_not_replaced_by_raw_plcc(monkeypatch):
    pred, gt = noisy_model(+1, n=50)

    def no_convergence(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: Number of calls to function has reached maxfev = 10000.")

    monkeypatch.setattr(metrics.optimize, "curve_fit", no_convergence)
    result = metrics.evaluate(pred, gt, fit="logistic4", bootstrap=100)
    assert math.isnan(result["plcc"].value) and "did not converge" in result["plcc"].flag
    assert math.isnan(result["rmse"].value) and "did not converge" in result["rmse"].flag
    assert result["srcc"].ok  # SRCC needs no fit
    assert metrics.plcc(pred, gt).ok  # raw PLCC exists, but is not what was asked for


def test_a_fit_running_against_the_raw_correlation_is_flagged(monkeypatch):
    # an optimiser that lands on a decreasing curve for positively correlated predictions (a non-monotone
    # relation can do that): the mapped PLCC would be positive for the wrong reason
    pred, gt = noisy_model(+1, n=50)
    monkeypatch.setattr(metrics.optimize, "curve_fit", lambda *a, **k: (np.array([1.0, 5.0, 0.0, 0.3]), None))
    result = metrics.plcc(pred, gt, fit="logistic4")
    assert math.isnan(result.value) and "against the raw correlation" in result.flag


def test_constant_up_to_float_noise_is_constant():
    # BRISQUE on identical images: equal to 12 significant digits
    pred = [60.64560257037, 60.64560257033, 60.64560257037, 60.64560257033, 60.64560257035]
    gt = [1.0, 2.0, 3.0, 4.0, 5.0]
    for name, metric in metrics.evaluate(pred, gt, fit="logistic4", bootstrap=0).items():
        assert math.isnan(metric.value) and "constant" in metric.flag, name
    # float32 noise around a score of 0.5 (CLIP-IQA's scale): still constant; a real spread of 1e-3 is not
    assert metrics.is_constant(np.float32(0.5) + np.array([0, 1, -1, 2], dtype=np.float32) * np.float32(6e-8))
    assert not metrics.is_constant([0.5, 0.501, 0.499])
    assert metrics.srcc([0.5, 0.501, 0.499, 0.502], [2, 3, 1, 4]).value == pytest.approx(1.0)
