"""Leaderboard cells: flagged metrics are shown but never ranked."""

from iqabench.reports.leaderboard import render_leaderboard


def pair(model, test, plcc, srcc, flag=None):
    metric = lambda value: {"value": value, "low": None, "high": None, "flag": flag}  # noqa: E731
    return {
        "model": model, "test_set": test, "status": "ok", "count": 5, "scored": 5, "unscored": 0,
        "metrics": {"plcc": metric(plcc), "srcc": metric(srcc)}, "failure_reasons": {},
    }


def results(pairs):
    return {
        "suite": {"name": "t", "protocol": "single_domain", "correlation": "logistic4", "bootstrap": 0,
                  "file": "t.yaml",
                  "sha256": "0" * 64, "seed": 0, "device": "cpu", "dtype": "float32", "batch_size": 1},
        "provenance": {"versions": {}, "command": "iqabench run t.yaml", "created": "now", "platform": "linux",
                       "python": "3.11"},
        "test_sets": [{"key": "a", "label": "A", "group": "test", "dataset": "a", "split": "test", "count": 5}],
        "models": [{"key": k, "label": k.upper()} for k in ("m1", "m2", "m3")],
        "results": pairs,
    }


def row(board, label):
    return next(line for line in board.splitlines() if line.startswith(f"| {label} "))


def test_flagged_cell_is_shown_but_never_bold():
    # m1's 0.95 comes from predictions constant up to float noise: the flag is shown, the number neither shown
    # nor ranked, and the others are ranked among themselves
    board = render_leaderboard(results([
        pair("m1", "a", 0.95, 0.95, flag="predictions are constant (up to float noise)"),
        pair("m2", "a", 0.80, 0.70),
        pair("m3", "a", 0.60, 0.75),
    ]))
    assert "0.950" not in row(board, "M1") and "predictions are constant" in row(board, "M1")
    assert "**0.800** / <u>0.700</u>" in row(board, "M2")
    assert "<u>0.600</u> / **0.750**" in row(board, "M3")


def test_a_failed_fit_keeps_the_valid_srcc_visible_but_unranked():
    failed_fit = pair("m1", "a", None, 0.99)
    failed_fit["metrics"]["plcc"]["flag"] = "logistic fit did not converge"
    board = render_leaderboard(results([failed_fit, pair("m2", "a", 0.8, 0.7), pair("m3", "a", 0.6, 0.5)]))
    cell = row(board, "M1")
    assert "— / 0.990" in cell and "logistic fit did not converge" in cell and "**" not in cell
    assert "**0.700**" in row(board, "M2")
    assert "monotone in the direction of the raw predictions" in board


def test_reported_averages_are_compared_with_the_measured_average():
    # Table 4 reports only AVG over the test sets
    data = results([pair("m1", "a", 0.8, 0.7), pair("m1", "b", 0.6, 0.5), pair("m2", "a", 0.9, 0.9),
                    pair("m2", "b", 0.9, 0.9)])
    data["test_sets"].append({"key": "b", "label": "B", "group": "test", "dataset": "b", "split": "test", "count": 5})
    data["models"][0]["reference"] = "Case 1"
    data["reference"] = {"file": "table4.csv", "rows": [
        {"model": "Case 1", "dataset": "AVG", "plcc": 0.748, "srcc": 0.727, "source": "Table 4 (reported)"}]}
    board = render_leaderboard(data)
    # measured AVG: (0.8 + 0.6) / 2 = 0.700 and (0.7 + 0.5) / 2 = 0.600
    assert "-0.048 / -0.127" in row(board, "M1 − Case 1 (reported)")
    assert "0.748 / 0.727" in board


def test_out_of_range_ratings_and_dataset_warnings_are_listed():
    counted = pair("m1", "a", 0.8, 0.7)
    counted["meta"] = {"model_counts": {"images": 5, "out_of_range_images": 2, "out_of_range_samples": 2}}
    data = results([counted, pair("m2", "a", 0.6, 0.5), pair("m3", "a", 0.4, 0.3)])
    data["test_sets"][0]["dataset_provenance"] = {"warnings": ["34 of 750 meta records name images CSIQ lacks"]}
    board = render_leaderboard(data)
    section = board.split("## Failures, unscored images and warnings")[1]
    assert "- M1 on A: 2 image(s) scored from ratings outside the model's range" in section
    assert "- A (dataset): 34 of 750 meta records name images CSIQ lacks" in section
