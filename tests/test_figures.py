"""Figures read back from their artists: what is drawn equals the data it was drawn from."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.text import Annotation, Text
from scipy import stats

from iqabench.reports import figures
from iqabench.run.predictions import Prediction


def metric_entry(value: float) -> dict:
    return {"value": value, "low": None, "high": None, "flag": None}


def ok_pair(model: str, test: str, rows: list[Prediction], sign: float = 1.0) -> dict:
    """A results.json pair whose PLCC/SRCC are computed here with scipy, independently of iqabench.reports.metrics."""
    scored = [r for r in rows if r.prediction is not None]
    pred = [sign * r.prediction for r in scored]
    mos = [r.mos for r in scored]
    return {"model": model, "test_set": test, "status": "ok", "count": len(rows), "scored": len(scored),
            "unscored": len(rows) - len(scored), "sign": sign,
            "metrics": {"plcc": metric_entry(stats.pearsonr(pred, mos)[0]),
                        "srcc": metric_entry(stats.spearmanr(pred, mos)[0])}}


def fixed_pair(model: str, test: str, plcc: float, srcc: float) -> dict:
    return {"model": model, "test_set": test, "status": "ok", "count": 10, "scored": 10, "unscored": 0, "sign": 1.0,
            "metrics": {"plcc": metric_entry(plcc), "srcc": metric_entry(srcc)}}


def results_dict(models: list[dict], tests: list[tuple[str, str, str]], pairs: list[dict], *,
                 correlation: str = "none", reference: list[dict] | None = None) -> dict:
    return {
        "suite": {"name": "t", "correlation": correlation},
        "test_sets": [{"key": k, "label": label, "dataset": dataset, "group": "test"} for k, label, dataset in tests],
        "models": [{"reference": None, "lower_better": False, "efficiency": None, **m} for m in models],
        "results": pairs,
        "reference": None if reference is None else {"file": "ref.csv", "rows": reference},
    }


def rows_from(mos: list[float], pred: list[float | None]) -> list[Prediction]:
    return [Prediction(f"{i}.png", p, m, m, None if p is not None else "too dark") for i, (m, p) in
            enumerate(zip(mos, pred))]


def efficiency(parameters: int, ms: float) -> dict:
    return {"parameters": parameters, "ms_per_image": ms, "batch_size": 16, "device_name": "cpu", "dtype": "float32"}


# ----------------------------------------------------------------------------------------------- predictions


def test_predictions_panels_plot_every_prediction_at_its_mos(tmp_path):
    a = rows_from([1.0, 2.0, 3.0, 4.0, 5.0, 2.5], [10.0, 30.0, 20.0, 50.0, 60.0, None])
    b = rows_from([1.5, 2.5, 3.5, 4.5], [0.1, 0.2, 0.4, 0.3])
    results = results_dict([{"key": "m", "label": "My model"}], [("a-test", "Set A", "a"), ("b-test", "Set B", "b")],
                           [ok_pair("m", "a-test", a), ok_pair("m", "b-test", b)])
    figure = figures.predictions_figure(results, "m", {"a-test": a, "b-test": b}, tmp_path / "p.png")
    panel_a, panel_b = figure.axes
    np.testing.assert_array_equal(panel_a.collections[0].get_offsets(), [[1, 10], [2, 30], [3, 20], [4, 50], [5, 60]])
    np.testing.assert_array_equal(panel_b.collections[0].get_offsets(), [[1.5, .1], [2.5, .2], [3.5, .4], [4.5, .3]])
    # the unscored image is a tick at its MOS, counted in the title
    (unscored,) = [line for line in panel_a.lines if line.get_marker() == "|"]
    assert list(unscored.get_xdata()) == [2.5]
    assert "5 of 6 scored" in panel_a.get_title()
    assert f"PLCC {stats.pearsonr([10, 30, 20, 50, 60], [1, 2, 3, 4, 5])[0]:.3f}" in panel_a.get_title()
    assert "SRCC 0.900" in panel_a.get_title()  # ranks 1 3 2 4 5: 1 - 6*2/(5*24)
    assert "Set B (n=4)" in panel_b.get_title() and "SRCC 0.800" in panel_b.get_title()
    for ax in figure.axes:  # the MOS scale [1, 5] is fully shown on every panel
        assert ax.get_xlim()[0] < 1.0 and ax.get_xlim()[1] > 5.0
    assert panel_a.get_ylabel() == "prediction (higher is better)"
    assert panel_a.get_xlabel().startswith("MOS")
    assert figure.get_suptitle() == "My model: predictions against MOS"
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_logistic_curve_is_the_fit_behind_plcc(sign):
    # MOS exactly on a known logistic of the (sign-corrected) prediction: the drawn curve must be that logistic
    pred = np.linspace(-3, 3, 25)
    mos = 1.0 + 4.0 / (1.0 + np.exp(-(sign * pred - 0.5) / 0.8))
    rows = rows_from(list(mos), list(pred))
    model = {"key": "m", "label": "M", "lower_better": sign < 0}
    results = results_dict([model], [("t", "T", "t")], [ok_pair("m", "t", rows, sign)], correlation="logistic4")
    figure = figures.predictions_figure(results, "m", {"t": rows}, None)
    (curve,) = [line for line in figure.axes[0].lines if line.get_marker() != "|"]
    y = curve.get_ydata()
    assert y.min() == pytest.approx(-3) and y.max() == pytest.approx(3)
    np.testing.assert_allclose(curve.get_xdata(), 1.0 + 4.0 / (1.0 + np.exp(-(sign * y - 0.5) / 0.8)), atol=1e-4)
    direction = "lower" if sign < 0 else "higher"
    assert figure.axes[0].get_ylabel() == f"prediction ({direction} is better)"


def test_no_curve_without_logistic_fit():
    rows = rows_from([1, 2, 3, 4], [1.0, 2.0, 4.0, 3.0])
    results = results_dict([{"key": "m", "label": "M"}], [("t", "T", "t")], [ok_pair("m", "t", rows)])
    figure = figures.predictions_figure(results, "m", {"t": rows}, None)
    assert len(figure.axes[0].lines) == 0


def test_failed_and_unrun_pairs_say_so_in_their_panel():
    rows = rows_from([1, 2, 3], [1.0, 2.0, 3.0])
    failed = {"model": "m", "test_set": "b", "status": "failed", "error": "RuntimeError: model exploded"}
    results = results_dict([{"key": "m", "label": "M"}], [("a", "A", "a"), ("b", "B", "b"), ("c", "C", "c")],
                           [ok_pair("m", "a", rows), failed])
    figure = figures.predictions_figure(results, "m", {"a": rows}, None)
    texts = [" ".join(t.get_text() for t in ax.texts) for ax in figure.axes]
    assert "failed" in texts[1] and "model exploded" in texts[1]
    assert texts[2] == "not run"
    assert not figure.axes[1].collections and not figure.axes[2].collections


# ----------------------------------------------------------------------------------------------- accuracy vs cost


def cost_results() -> dict:
    tests = [("a", "A", "koniq10k"), ("b", "B", "spaq")]
    models = [
        {"key": "small", "label": "Small", "efficiency": efficiency(1_332, 5.4)},
        {"key": "mid", "label": "Mid", "efficiency": efficiency(28_712, 6.5)},
        {"key": "big", "label": "Big", "efficiency": efficiency(5_201_573, 10.8), "reference": "Big (paper)"},
        {"key": "broken", "label": "Broken", "efficiency": efficiency(10, 1.0)},
    ]
    pairs = [fixed_pair("small", "a", 0.50, 0.52), fixed_pair("small", "b", 0.44, 0.46),
             fixed_pair("mid", "a", 0.61, 0.63), fixed_pair("mid", "b", 0.59, 0.55),
             fixed_pair("big", "a", 0.90, 0.88), fixed_pair("big", "b", 0.86, 0.84),
             fixed_pair("broken", "a", 0.3, 0.3), {"model": "broken", "test_set": "b", "status": "failed"}]
    reference = [
        {"table": "Table 2", "model": "Big (paper)", "dataset": "koniq10k", "plcc": 0.939, "srcc": 0.922,
         "parameters": "300000000"},
        {"table": "Table 2", "model": "Big (paper)", "dataset": "spaq", "plcc": 0.897, "srcc": 0.897,
         "parameters": "300000000"},
        {"table": "Table 2", "model": "Other (paper)", "dataset": "koniq10k", "plcc": 0.933, "srcc": 0.916,
         "parameters": "7000000000"},
        {"table": "Table 2", "model": "Other (paper)", "dataset": "spaq", "plcc": 0.907, "srcc": 0.905,
         "parameters": "7000000000"},
        {"table": "Table 2", "model": "No size (paper)", "dataset": "koniq10k", "plcc": 0.8, "srcc": 0.8,
         "parameters": ""},
    ]
    return results_dict(models, tests, pairs, reference=reference)


def markers(ax) -> dict[str, tuple[float, float, bool]]:
    """label -> (x, y, hollow) of the single-point lines of a panel."""
    out = {}
    for line in ax.lines:
        hollow = line.get_markerfacecolor() == "none" or to_rgba(line.get_markerfacecolor())[3] == 0
        out[line.get_label()] = (line.get_xdata()[0], line.get_ydata()[0], hollow)
    return out


def test_accuracy_cost_points_are_mean_accuracy_at_measured_cost_and_reported_ones_are_hollow():
    figure = figures.accuracy_cost_figure(cost_results(), None)
    (plcc_params, plcc_ms), (srcc_params, srcc_ms) = np.reshape(figure.axes, (2, 2))
    got = markers(srcc_params)
    assert got["Small"] == pytest.approx((1_332, (0.52 + 0.46) / 2, False))
    assert got["Mid"] == pytest.approx((28_712, (0.63 + 0.55) / 2, False))
    assert got["Big"] == pytest.approx((5_201_573, (0.88 + 0.84) / 2, False))
    assert got["Big (paper) (reported)"] == pytest.approx((3e8, (0.922 + 0.897) / 2, True))
    assert got["Other (paper) (reported)"] == pytest.approx((7e9, (0.916 + 0.905) / 2, True))
    assert "Broken" not in got and not any("No size" in k for k in got)  # incomplete row; no stated size
    assert markers(plcc_params)["Mid"] == pytest.approx((28_712, 0.60, False))
    # the paper gives no latency: only measured points against ms/image
    assert set(markers(srcc_ms)) == {"Small", "Mid", "Big"}
    assert markers(plcc_ms)["Big"] == pytest.approx((10.8, 0.88, False))
    for ax in figure.axes:
        assert ax.get_xscale() == "log"
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert all(x0 < x < x1 and y0 < y < y1 for x, y, _ in markers(ax).values())
    assert srcc_params.get_ylabel() == "SRCC (mean over 2 test sets)"
    assert plcc_ms.get_xlabel() == "ms / image (log scale)\ncpu, float32, batch 16"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["measured", "reported (paper)"]
    # a measured model and the paper's numbers for it share a colour
    colours = {line.get_label(): to_rgba(line.get_color()) for line in srcc_params.lines}
    assert colours["Big"] == colours["Big (paper) (reported)"]


def test_accuracy_cost_labels_name_each_point_and_do_not_overlap():
    results = cost_results()
    # three models crowded at nearly the same cost and accuracy
    for index, key in enumerate(("c1", "c2", "c3")):
        results["models"].append({"key": key, "label": f"Crowded model number {index}", "reference": None,
                                  "efficiency": efficiency(30_000 + 500 * index, 6.5 + 0.05 * index)})
        results["results"] += [fixed_pair(key, "a", 0.6 + 0.004 * index, 0.6), fixed_pair(key, "b", 0.6, 0.6)]
    figure = figures.accuracy_cost_figure(results, None)
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        notes = [c for c in ax.get_children() if isinstance(c, Annotation)]
        assert sorted(n.get_text() for n in notes) == sorted(markers(ax))
        for note in notes:
            note.update_positions(renderer)
        boxes = [Text.get_window_extent(n, renderer) for n in notes]  # the text, without its leader line
        for one, two in itertools.combinations(boxes, 2):
            assert not one.overlaps(two), (one, two)
        area = ax.get_window_extent(renderer)
        assert all(area.x0 <= b.x0 and b.x1 <= area.x1 and area.y0 <= b.y0 and b.y1 <= area.y1 for b in boxes)


def test_no_cost_figure_without_a_measured_cost(tmp_path):
    results = cost_results()
    for model in results["models"]:
        model["efficiency"] = None
    assert figures.accuracy_cost_figure(results, tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


# ----------------------------------------------------------------------------------------------- measured vs reported


def ablation_results() -> dict:
    tests = [("k", "KonIQ", "koniq10k"), ("s", "SPAQ", "spaq")]
    models = [{"key": "case-1", "label": "Case 1 (no contrastive alignment, no seed augmentation)",
               "reference": "Case 1 (no contrastive alignment, no seed augmentation)"},
              {"key": "case-6", "label": "Case 6 (full RALI)", "reference": "Case 6 (full RALI)"},
              {"key": "extra", "label": "Not in the paper"}]
    pairs = [fixed_pair("case-1", "k", 0.70, 0.68), fixed_pair("case-1", "s", 0.74, 0.72),
             fixed_pair("case-6", "k", 0.80, 0.79), {"model": "case-6", "test_set": "s", "status": "failed"},
             fixed_pair("extra", "k", 0.5, 0.5), fixed_pair("extra", "s", 0.5, 0.5)]
    reference = [
        {"table": "Table 4", "model": "Case 1 (no contrastive alignment, no seed augmentation)", "dataset": "AVG",
         "plcc": 0.748, "srcc": 0.727},
        {"table": "Table 4", "model": "Case 6 (full RALI)", "dataset": "AVG", "plcc": 0.798, "srcc": 0.779},
    ]
    return results_dict(models, tests, pairs, reference=reference)


def test_measured_against_reported_bars():
    figure = figures.reported_comparison_figure(ablation_results(), None)
    ax = figure.axes[0]
    bars = [(p.get_width(), p.get_facecolor(), p.get_hatch()) for p in ax.patches]
    solid = [round(w, 6) for w, _, hatch in bars if not hatch]
    hollow = [(round(w, 6), face) for w, face, hatch in bars if hatch]
    # Case 1: measured means of its two test sets; Case 6 has a failed test set, so no measured bars
    assert solid == [0.72, 0.70]
    # the paper's printed AVG (Table 4 gives no per-dataset numbers), hatched and white inside
    assert [w for w, _ in hollow] == [0.748, 0.727, 0.798, 0.779]
    assert all(face == to_rgba("white") for _, face in hollow)
    assert any("incomplete" in t.get_text() for t in ax.texts)
    assert [t.get_text() for t in ax.get_yticklabels()][1] == "Case 6 (full RALI)"
    assert len(ax.get_yticklabels()) == 2  # the model without a reference row is not drawn
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "PLCC measured", "PLCC reported (paper)", "SRCC measured", "SRCC reported (paper)"]
    assert "Table 4" in figure.get_suptitle()
    x0, x1 = ax.get_xlim()
    assert x0 <= 0.70 and x1 >= 0.798
    assert {a.get_text() for a in ax.texts if isinstance(a, Annotation)} >= {"0.720", "0.748", "0.779"}


def test_reported_average_prefers_the_run_test_sets():
    results = cost_results()
    average = figures.reported_average(results, "Big (paper)")
    assert (average.plcc, average.srcc) == pytest.approx(((0.939 + 0.897) / 2, (0.922 + 0.897) / 2))
    assert average.basis == "the mean over this run's test sets"
    assert figures.reported_average(results, "No size (paper)") is None  # SPAQ not reported, no printed AVG
    assert figures.reported_average(ablation_results(), "Case 6 (full RALI)").basis == "the paper's printed AVG"


# ----------------------------------------------------------------------------------------------- efficiency


def bench_report() -> dict:
    def row(batch, ms, mib, error=None):
        return {"batch_size": batch, "ms_per_image": ms, "peak_memory_mib": mib, "error": error}

    return {
        "device_name": "NVIDIA H100 80GB HBM3",
        "baseline": "q-insight",
        "models": [
            {"model": "rali", "label": "RALI", "parameters": 304_816_891,
             "rows": [row(1, 4.0, 2_000.0), row(16, 0.5, 2_500.0), row(64, None, None, "OutOfMemoryError")]},
            {"model": "q-insight", "label": "Q-Insight", "parameters": 8_292_166_656,
             "rows": [row(1, 400.0, 17_000.0), row(16, 14.7, 17_007.0), row(64, 10.0, 30_000.0)]},
        ],
        "ratios": [
            {"model": "RALI", "baseline": "Q-Insight", "batch_size": 1, "time": 0.01, "memory": 2_000 / 17_000,
             "comparable": True},
            {"model": "RALI", "baseline": "Q-Insight", "batch_size": 16, "time": 0.5 / 14.7, "memory": 0.147,
             "comparable": True},
        ],
    }


def test_efficiency_figure_bars_ratios_and_failures(tmp_path):
    figure = figures.efficiency_figure(bench_report(), tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    memory, time = figure.axes
    assert memory.get_yscale() == "log" and time.get_yscale() == "log"
    assert [t.get_text() for t in memory.get_xticklabels()] == ["1", "16", "64"]
    # memory in GiB (peaks above 2 GiB), RALI bars first, left of Q-Insight's in each batch-size group
    heights = [round(p.get_height() * 1024, 6) for p in memory.patches]
    assert heights == [2_000.0, 2_500.0, 17_000.0, 17_007.0, 30_000.0]
    assert "GiB" in memory.get_ylabel()
    assert [round(p.get_height(), 6) for p in time.patches] == [4.0, 0.5, 400.0, 14.7, 10.0]
    rali_x = [p.get_x() + p.get_width() / 2 for p in time.patches[:2]]
    qinsight_x = [p.get_x() + p.get_width() / 2 for p in time.patches[2:4]]
    assert all(r < q for r, q in zip(rali_x, qinsight_x))
    # each RALI bar carries its ratio to the baseline, as the report gives it
    assert [a.get_text() for a in memory.texts if isinstance(a, Annotation)] == [
        "1.95\n11.8%", "2.44\n14.7%", "16.6", "16.6", "29.3"]
    assert [a.get_text() for a in time.texts if isinstance(a, Annotation)] == [
        "4\n1.0%", "0.5\n3.4%", "400", "14.7", "10"]
    assert any(t.get_text() == "failed" for t in time.texts)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["RALI", "Q-Insight (baseline: 100%)"]
    for ax in (memory, time):
        y0, y1 = ax.get_ylim()
        assert all(y0 < p.get_height() < y1 for p in ax.patches)


def test_efficiency_ratios_of_reduced_models_are_starred():
    report = bench_report()
    for ratio in report["ratios"]:
        ratio["comparable"] = False
    figure = figures.efficiency_figure(report, None)
    notes = [a.get_text() for a in figure.axes[1].texts if isinstance(a, Annotation)]
    assert notes[:2] == ["4\n1.0%*", "0.5\n3.4%*"]
    assert "not comparable" in figure.get_suptitle()


# ----------------------------------------------------------------------------------------------- determinism


def small_predictions_results() -> tuple[dict, dict]:
    rows = rows_from([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 3.0, 2.0, 5.0, 4.0])
    results = results_dict([{"key": "m", "label": "M"}], [("t", "T", "t")], [ok_pair("m", "t", rows)],
                           correlation="logistic4")
    return results, {"t": rows}


def test_redrawing_gives_identical_bytes_without_stamps(tmp_path):
    results, rows = small_predictions_results()
    figures.predictions_figure(results, "m", rows, tmp_path / "one.png")
    figures.predictions_figure(json.loads(json.dumps(results)), "m", rows, tmp_path / "two.png")
    data = (tmp_path / "one.png").read_bytes()
    assert data == (tmp_path / "two.png").read_bytes()
    assert b"Software" not in data and b"atplotlib" not in data and b"tIME" not in data


def test_the_user_style_does_not_leak_in(tmp_path):
    import matplotlib

    results, rows = small_predictions_results()
    figures.predictions_figure(results, "m", rows, tmp_path / "plain.png")
    with matplotlib.rc_context({"font.size": 20, "lines.markersize": 30, "axes.grid": False}):
        figures.predictions_figure(results, "m", rows, tmp_path / "styled.png")
    assert (tmp_path / "plain.png").read_bytes() == (tmp_path / "styled.png").read_bytes()
