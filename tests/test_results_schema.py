"""The schema of results.json: every reader goes through it, so a wrong field fails with its name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from iqabench.reports.schema import Results, ResultsError, read_results

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "leaderboards" / "quickstart" / "results.json"


def minimal(**overrides) -> dict:
    data = {
        "suite": {"name": "t"},
        "test_sets": [{"key": "a", "label": "A", "dataset": "a"}],
        "models": [{"key": "m", "label": "M"}],
        "results": [{"model": "m", "test_set": "a", "status": "ok", "count": 3, "scored": 3,
                     "metrics": {"plcc": {"value": 0.5}, "srcc": {"value": float("nan"), "flag": "constant"}}}],
    }
    data.update(overrides)
    return data


def test_the_committed_quickstart_results_read_and_write_back_unchanged():
    raw = json.loads(QUICKSTART.read_text())
    results = read_results(QUICKSTART)
    assert [m.label for m in results.models] == [m["label"] for m in raw["models"]]
    pair = results.pair("niqe", "synthetic-test")
    assert pair.metric("srcc") == raw["results"][0]["metrics"]["srcc"]["value"]
    assert results.models[0].efficiency.parameters == raw["models"][0]["efficiency"]["parameters"]
    # every field of the file is kept and nothing is added
    assert contained(results.to_json(), raw) == {}


def test_a_results_file_from_before_the_analysis_sections_reads_and_gets_them_empty(tmp_path):
    raw = json.loads(QUICKSTART.read_text())
    del raw["significance"]
    for pair in raw["results"]:
        del pair["groups"], pair["input"]
    older = tmp_path / "results.json"
    older.write_text(json.dumps(raw))
    added = contained(read_results(older).to_json(), raw)
    assert set(added) == {"/significance", *(f"/results[{i}]/{key}" for i in range(len(raw["results"]))
                                              for key in ("groups", "input"))}
    assert all(value in (None, []) for value in added.values()), added


def contained(new, old, path="") -> dict:
    """Assert every key and value of ``old`` is in ``new``; return the keys only ``new`` has, with their values."""
    if isinstance(old, dict):
        extra = {}
        for key, value in new.items():
            if key in old:
                extra.update(contained(value, old[key], f"{path}/{key}"))
            else:
                extra[f"{path}/{key}"] = value
        assert set(old) <= set(new), path
        return extra
    if isinstance(old, list):
        assert len(new) == len(old), path
        extra = {}
        for index, (a, b) in enumerate(zip(new, old)):
            extra.update(contained(a, b, f"{path}[{index}]"))
        return extra
    assert new == old, path
    return {}


def test_a_flagged_or_not_finite_metric_is_not_usable():
    pair = read_results(minimal()).results[0]
    assert pair.metric("plcc") == 0.5
    assert pair.metric("srcc") is None and math.isnan(pair.metrics["srcc"].value)
    assert pair.flags == {"constant"}


def test_a_misspelled_field_is_named_in_the_error():
    data = minimal()
    data["results"][0]["scroed"] = 3
    with pytest.raises(ResultsError, match=r"`results\.0\.scroed`: Extra inputs are not permitted"):
        read_results(data)


def test_a_wrong_kind_of_value_is_named_in_the_error(tmp_path):
    data = minimal()
    data["results"][0]["status"] = "done"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=rf"{path} does not have the layout.*`results\.0\.status`"):
        read_results(path)


def test_records_made_elsewhere_keep_their_extra_fields():
    data = minimal(models=[{"key": "m", "label": "M", "efficiency": {"parameters": 10, "torch_threads": 2}}])
    data["test_sets"][0]["dataset_provenance"] = {"dataset": "a", "root": "~/d", "rescale_min": 1.0}
    written = read_results(data).to_json()
    assert written["models"][0]["efficiency"]["torch_threads"] == 2
    assert written["test_sets"][0]["dataset_provenance"]["rescale_min"] == 1.0


def test_reference_rows_read_blank_cells_as_missing():
    data = minimal(reference={"file": "t.csv", "rows": [
        {"table": "Table 2", "model": "X", "dataset": "a", "plcc": "", "srcc": 0.7, "parameters": "", "source": "s"}]})
    row = read_results(data).reference.rows[0]
    assert row.plcc is None and row.srcc == 0.7 and row.parameters is None


def test_not_json_says_how_to_rewrite_it(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{cut")
    with pytest.raises(ResultsError, match="is not valid JSON.*re-run the suite with the same --out"):
        read_results(path)


def test_a_results_object_is_returned_as_is():
    results = Results.model_validate(minimal())
    assert read_results(results) is results
