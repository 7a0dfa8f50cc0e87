"""Metrics against formulas computed independently in the test."""

import math

import numpy as np
import pytest

from iqabench import metrics


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
