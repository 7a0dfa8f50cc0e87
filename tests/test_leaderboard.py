"""leaderboard.md with its figures: written by a run, redrawn by `iqabench leaderboard` without loading a model."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from iqabench.cli import main
from iqabench.registry.discovery import PluginRegistry
from iqabench.run.runner import run_suite
from iqabench.run.suite import load_suite
from tests.helpers import Brightness, Picky, make_graded_root, registry_with

REFERENCE = """table,model,dataset,plcc,srcc,parameters,source
Table X,Bright (paper),graded,0.95,0.97,2000000,"made up for this test (reported)"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished run of two models on the graded set, with a reference file naming one of them."""
    root = tmp_path_factory.mktemp("run")
    make_graded_root(root / "data" / "graded")
    (root / "ref.csv").write_text(REFERENCE)
    suite = {
        "name": "figures", "protocol": "single_domain", "batch_size": 4, "num_workers": 0, "bootstrap": 0,
        "test": [{"dataset": "graded", "split": "test"}], "reference": "ref.csv",
        "models": [{"name": "brightness", "reference": "Bright (paper)"}, {"name": "picky"}],
        "efficiency": {"warmup": 0, "repeats": 1},
    }
    (root / "suite.yaml").write_text(yaml.safe_dump(suite))
    run_suite(root / "suite.yaml", root / "out", data_root=str(root / "data"),
              registry=registry_with(Brightness, Picky), progress=False)
    return root / "out"


def links(board: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", board)


def test_run_embeds_one_figure_per_model_and_the_comparisons(run_dir):
    board = (run_dir / "leaderboard.md").read_text()
    assert links(board) == ["figures/predictions-brightness.png", "figures/predictions-picky.png",
                            "figures/accuracy-cost.png", "figures/measured-vs-reported.png"]
    assert all((run_dir / link).read_bytes()[:4] == b"\x89PNG" for link in links(board))
    # each figure sits in its section: predictions after the accuracy table, the comparison after reported numbers
    assert board.index("## Accuracy") < board.index("### Predictions against MOS") < board.index("## Efficiency")
    assert board.index("## Reported numbers") < board.index("## Measured against reported")
    assert "Hollow: reported (paper)" in board


def test_predictions_figure_shows_the_prediction_files(run_dir):
    from iqabench.reports import figures

    results = json.loads((run_dir / "results.json").read_text())
    with (run_dir / "predictions" / "picky" / "graded-test.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    predictions = figures.read_predictions(run_dir, "picky", ["graded-test"])
    figure = figures.predictions_figure(results, "picky", predictions, run_dir / "check.png")
    ax = figure.axes[0]
    scored = [(float(r["mos"]), float(r["prediction"])) for r in rows if r["prediction"]]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), scored)
    unscored = [float(r["mos"]) for r in rows if not r["prediction"]]
    assert unscored, "the graded set has images Picky refuses"
    tick_line = next(line for line in ax.lines if line.get_marker() == "|")
    np.testing.assert_allclose(tick_line.get_xdata(), unscored)
    assert f"{len(scored)} of {len(rows)} scored" in ax.get_title()


def test_leaderboard_command_redraws_the_same_files_without_loading_a_model(run_dir, monkeypatch, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = {p.name: p.read_bytes() for p in (copy / "figures").iterdir()}
    board = (copy / "leaderboard.md").read_text()
    for path in (copy / "figures").iterdir():
        path.unlink()
    monkeypatch.setattr(PluginRegistry, "model", lambda *args, **kwargs: pytest.fail("a model was looked up"))
    assert main(["leaderboard", str(copy)]) == 0
    assert {p.name: p.read_bytes() for p in (copy / "figures").iterdir()} == before
    assert (copy / "leaderboard.md").read_text() == board


def test_results_copied_without_predictions_keep_the_figures_drawn_earlier(run_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(run_dir / "results.json", copy)
    shutil.copytree(run_dir / "figures", copy / "figures")
    (copy / "figures" / "predictions-picky.png").unlink()
    kept = (copy / "figures" / "predictions-brightness.png").read_bytes()
    assert main(["leaderboard", str(copy)]) == 0
    board = (copy / "leaderboard.md").read_text()
    assert "figures/predictions-brightness.png" in links(board)
    assert "figures/predictions-picky.png" not in links(board)  # nothing to draw it from
    assert (copy / "figures" / "predictions-brightness.png").read_bytes() == kept


def test_leaderboard_command_explains_a_folder_without_results(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "has no results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{not json")
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_ablation_suite_cases_find_their_table4_rows():
    """Every case of suites/ablation_rali.yaml names a Table 4 row, so its chart has all six reported pairs."""
    from iqabench.reports import figures
    from iqabench.reports.results import read_reference

    repo = Path(__file__).resolve().parents[1]
    suite, _ = load_suite(repo / "suites" / "ablation_rali.yaml")
    rows = read_reference((repo / "suites" / suite.reference).resolve())
    results = {
        "suite": {"name": suite.name},
        "test_sets": [{"key": d.dataset, "label": d.dataset, "dataset": d.dataset, "group": "test"}
                      for d in suite.test],
        "models": [{"key": str(i), "label": m.display, "reference": m.reference} for i, m in enumerate(suite.models)],
        "results": [],
        "reference": {"file": suite.reference, "rows": rows},
    }
    compared = figures.comparison_rows(results)
    assert [c.label for c in compared] == [m.display for m in suite.models]
    assert [(c.reported.plcc, c.reported.srcc) for c in compared] == [
        (0.748, 0.727), (0.792, 0.772), (0.785, 0.766), (0.793, 0.773), (0.743, 0.723), (0.798, 0.779)]
    figure = figures.reported_comparison_figure(results, None)
    assert len([p for p in figure.axes[0].patches if p.get_hatch()]) == 12  # PLCC and SRCC of six cases


def test_a_figure_that_cannot_be_drawn_is_reported_and_the_tables_are_written(run_dir, tmp_path, monkeypatch):
    from iqabench.reports import figures, leaderboard

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)

    def broken(*args, **kwargs):
        raise ValueError("cannot draw this")

    monkeypatch.setattr(figures, "accuracy_cost_figure", broken)
    leaderboard.write_leaderboard(json.loads((copy / "results.json").read_text()), copy)
    board = (copy / "leaderboard.md").read_text()
    assert "*Figure figures/accuracy-cost.png not drawn: ValueError: cannot draw this*" in board
    assert "| brightness" in board and "figures/predictions-brightness.png" in links(board)
