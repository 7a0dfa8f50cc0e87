"""Per-distortion results, failure galleries and leaderboard.html, checked against the prediction files."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from iqabench.cli import main
from iqabench.reports import figures
from iqabench.reports.gallery import largest_rank_errors
from iqabench.reports.schema import read_results
from iqabench.run.predictions import Prediction
from tests.leaderboard_run import TYPES, make_analysis_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_analysis_run(tmp_path_factory.mktemp("analyses"))


def predictions(run_dir: Path, model: str) -> list[dict]:
    with (run_dir / "predictions" / model / "typed-test.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # a whole run is made first (module fixture)
def test_the_run_keeps_the_distortion_labels_and_the_srcc_per_type(run_dir):
    with (run_dir / "test_sets" / "typed-test.csv").open(newline="") as handle:
        labels = list(csv.DictReader(handle))
    assert [(r["distortion"], int(r["level"])) for r in labels] == [(TYPES[i % 3], 1 + i // 3 % 5)
                                                                     for i in range(len(labels))]
    results = read_results(run_dir / "results.json")
    for model in ("bright", "wobbly-b", "reasoner"):
        rows = predictions(run_dir, model)
        pair = results.pair(model, "typed-test")
        assert [g.name for g in pair.groups] == list(TYPES)
        for group in pair.groups:
            chosen = [r for r, label in zip(rows, labels) if label["distortion"] == group.name and r["prediction"]]
            expected = stats.spearmanr([float(r["prediction"]) for r in chosen], [float(r["mos"]) for r in chosen])[0]
            assert group.srcc.value == pytest.approx(expected)
            assert group.count == 8 and group.scored == len(chosen)
    # the reasoner could not score the darkest image (a blur one)
    assert results.pair("reasoner", "typed-test").groups[0].scored == 7


@pytest.mark.slow  # a whole run is made first (module fixture)
def test_the_table_and_the_heat_map_show_the_numbers_of_results_json(run_dir):
    results = read_results(run_dir / "results.json")
    board = (run_dir / "leaderboard.md").read_text()
    section = board.split("## Per distortion type")[1].split("### Predictions against MOS")[0]
    wobbly = {g.name: g.srcc.value for g in results.pair("wobbly-b", "typed-test").groups}
    for kind in TYPES:
        row = next(line for line in section.splitlines() if line.startswith(f"| {kind} (8)"))
        assert f"{wobbly[kind]:.3f}" in row
    assert "figures/distortions-typed-test.png" in section
    figure = figures.distortion_figure(results, "typed-test", None)
    texts = [t.get_text() for t in figure.axes[0].texts]
    # models by types, row by row: Bright, Wobbly, Reasoner
    expected = [f"{g.srcc.value:.2f}" for m in ("bright", "wobbly-b", "reasoner")
                for g in results.pair(m, "typed-test").groups]
    assert texts == expected
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list(TYPES)


@pytest.mark.slow  # a whole run is made first (module fixture)
def test_significance_is_in_results_json_and_marked(run_dir):
    results = read_results(run_dir / "results.json")
    record = results.significance.for_test("typed-test")
    assert record.srcc.best == "bright" and record.plcc.best == "bright"
    assert {(p.a, p.b) for p in record.pairs} == {("bright", "wobbly-b"), ("bright", "reasoner"),
                                                 ("wobbly-b", "reasoner")}
    assert all(p.plcc.p_williams is not None and p.srcc.p_bootstrap is not None for p in record.pairs)
    assert "### Significance against the best" in (run_dir / "leaderboard.md").read_text()


def test_largest_rank_errors_by_hand():
    # MOS ranks (1 = best): d=1, c=2, b=3, a=4; predicted ranks: a=1, b=3, c=2, d=4 -> errors a 3, d 3, b 0, c 0
    rows = [Prediction("a", 9.0, 1.0, 1.0), Prediction("b", 5.0, 2.0, 2.0), Prediction("c", 7.0, 3.0, 3.0),
            Prediction("d", 1.0, 4.0, 4.0), Prediction("e", None, 5.0, 5.0, "failed")]
    misses = largest_rank_errors(rows, sign=1.0, count=3)
    assert [(m.image, m.predicted_rank, m.mos_rank) for m in misses] == [("a", 1, 4), ("d", 4, 1)]
    assert misses[0].rank_error == pytest.approx(1.0) and misses[0].scored == 4
    # lower-is-better predictions are negated first: then the same images are ranked right
    assert largest_rank_errors([Prediction("x", 1.0, 5.0, 5.0), Prediction("y", 2.0, 1.0, 1.0)], sign=-1.0) == []


@pytest.mark.slow  # a whole run is made first (module fixture)
def test_galleries_show_the_reasoning_and_small_thumbnails_only(run_dir):
    page = (run_dir / "leaderboard.html").read_text()
    assert "The image looks" in page and "Score." not in page.split("Failure galleries")[1].split("Efficiency")[0]
    assert (run_dir / "figures" / "gallery-reasoner.png").exists()
    uris = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
    assert uris
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as image:
            assert max(image.size) <= 128
    # nothing of the dataset in the run folder beyond the labels and the drawn figures
    assert not list(run_dir.rglob("*.jpg")) and not [p for p in run_dir.rglob("*.png") if "figures" not in p.parts]


@pytest.mark.slow  # a whole run is made first (module fixture)
def test_the_page_is_self_contained_escaped_and_redrawn_identically(run_dir, tmp_path):
    page = (run_dir / "leaderboard.html").read_bytes()
    text = page.decode()
    assert not re.search(r"(src|href)=\"(?!data:)", text) and "http://" not in text and "https://" not in text
    assert "Wobbly &lt;b&gt;" in text and "Wobbly <b>" not in text
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)[1])
    assert [t["key"] for t in data["tests"]] == ["typed-test"]
    figure_before = (run_dir / "figures" / "gallery-reasoner.png").read_bytes()
    assert main(["leaderboard", str(run_dir)]) == 0
    assert (run_dir / "leaderboard.html").read_bytes() == page
    assert (run_dir / "figures" / "gallery-reasoner.png").read_bytes() == figure_before


@pytest.mark.slow  # a whole run is made first (module fixture)
def test_the_scatter_points_carry_the_prediction_file(run_dir):
    text = (run_dir / "leaderboard.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)[1])
    scatter = next(s for s in data["scatters"] if s["model"] == "wobbly-b")
    rows = predictions(run_dir, "wobbly-b")
    assert [(p[0], p[1], p[2]) for p in scatter["points"]] == [
        (i, float(r["mos"]), float(r["prediction"])) for i, r in enumerate(rows)]
    assert len(re.findall(r'<circle class="pt"', text)) == sum(len(s["points"]) for s in data["scatters"])
    assert np.all([p[6] == len(rows) for p in scatter["points"]])


def test_the_page_shows_each_rows_weights_and_each_pairs_input_as_the_markdown_does(tmp_path):
    from iqabench.reports.html import render_html
    from iqabench.reports.leaderboard import render_leaderboard

    pair = {"test_set": "a", "status": "ok", "count": 3, "scored": 3,
            "metrics": {"plcc": {"value": 0.5}, "srcc": {"value": 0.4}}}
    raw = {
        "suite": {"name": "t"},
        "test_sets": [{"key": "a", "label": "A", "dataset": "a"}],
        "models": [{"key": "mine", "label": "Mine", "weights": {"kind": "trained here"}},
                   {"key": "peer", "label": "Peer", "weights": {"kind": "released checkpoint",
                                                                "note": "remote code <mPLUG-Owl2>"}}],
        "results": [{**pair, "model": "mine", "input": {"dataset_options": {"resolution": "512x384"},
                                                        "source": "Q-Insight's max_prompt_length"}},
                    {**pair, "model": "peer", "input": {"resize": {"shorter_side": 512}}}],
    }
    (tmp_path / "results.json").write_text(json.dumps(raw))
    results = read_results(tmp_path / "results.json")
    page = render_html(results, tmp_path, {})
    rows = re.findall(r'<tr data-model="(\w+)"><td class="label">\w+</td>'
                      r'<td class="weights" title="([^"]*)">([^<]*)</td>', page)
    assert rows == [("mine", "", "trained here"), ("peer", "remote code &lt;mPLUG-Owl2&gt;", "released checkpoint")]
    inputs = page[page.index("<h2>Inputs and weights</h2>"):]
    assert "<td>resolution=512x384 [1]</td>" in inputs and "<td>shorter side 512</td>" in inputs
    assert "<li>[1] Q-Insight&#x27;s max_prompt_length</li>" in inputs
    assert "<li>Peer: remote code &lt;mPLUG-Owl2&gt;</li>" in inputs
    board = render_leaderboard(results)
    assert "resolution=512x384 [1]" in board and "- Peer: remote code <mPLUG-Owl2>" in board
