"""The runner end to end on a tiny dataset and simple models: numbers, resume, failures, bad input."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from iqabench import hookimpl
from iqabench.errors import SuiteError, UnknownNameError
from iqabench.run.plan import DataMissingError
from iqabench.run.runner import run_suite as run_suite_file
from iqabench.run.suite import load_suite
from tests.helpers import Brightness, Broken, Darkness, Picky, make_graded_root, registry_with


def write_suite(path: Path, **overrides) -> Path:
    suite = {
        "name": "t",
        "protocol": "single_domain",
        "batch_size": 4,
        "num_workers": 0,
        "bootstrap": 100,
        "test": [{"dataset": "graded", "split": "test"}],
        "models": [{"name": "brightness"}, {"name": "darkness"}],
        "efficiency": {"warmup": 0, "repeats": 2},
    }
    suite.update(overrides)
    path.write_text(yaml.safe_dump(suite))
    return path


def run_suite(tmp_path: Path, registry, force=False, **overrides):
    data = make_graded_root(tmp_path / "data" / "graded") if not (tmp_path / "data" / "graded").exists() else None
    suite_path = write_suite(tmp_path / "suite.yaml", **overrides)
    results = run_suite_file(suite_path, tmp_path / "out", data_root=str(tmp_path / "data"), registry=registry,
                        progress=False, force=force)
    return results, data


def cell(results, model, test="graded-test"):
    return next(p for p in results["results"] if p["model"] == model and p["test_set"] == test)


@pytest.mark.slow
def test_scores_match_independent_correlations(tmp_path):
    results, _ = run_suite(tmp_path, registry_with(Brightness, Darkness))
    rows = list((tmp_path / "out" / "predictions" / "brightness" / "graded-test.csv").read_text().splitlines())
    assert rows[0] == "image,prediction,mos,mos_raw,error"
    preds = np.array([float(r.split(",")[1]) for r in rows[1:]])
    gt = np.array([float(r.split(",")[2]) for r in rows[1:]])
    assert len(preds) == 6  # odd indices of 12
    got = cell(results, "brightness")["metrics"]
    assert got["plcc"]["value"] == pytest.approx(stats.pearsonr(preds, gt)[0])
    assert got["srcc"]["value"] == pytest.approx(1.0)
    # the lower-is-better model is negated, so it correlates positively too
    assert cell(results, "darkness")["metrics"]["srcc"]["value"] == pytest.approx(1.0)
    assert cell(results, "darkness")["sign"] == -1.0
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| brightness" in board and "PLCC / SRCC" in board


@pytest.mark.slow
def test_rerun_resumes_without_scoring_and_gives_identical_numbers(tmp_path, monkeypatch):
    first, _ = run_suite(tmp_path, registry_with(Brightness, Darkness))
    calls = []
    monkeypatch.setattr(Brightness, "score_batch", lambda self, items: calls.append(1) or [])
    second, _ = run_suite(tmp_path, registry_with(Brightness, Darkness))
    assert calls == []
    assert [p["metrics"] for p in first["results"]] == [p["metrics"] for p in second["results"]]
    assert (tmp_path / "out" / "leaderboard.md").exists()


@pytest.mark.slow
def test_force_redoes_and_changed_options_invalidate(tmp_path):
    run_suite(tmp_path, registry_with(Brightness, Darkness))
    results, _ = run_suite(
        tmp_path, registry_with(Brightness, Darkness), models=[{"name": "brightness", "options": {"offset": 10.0}}]
    )
    rows = (tmp_path / "out" / "predictions" / "brightness" / "graded-test.csv").read_text().splitlines()[1:]
    meta = json.loads((tmp_path / "out" / "predictions" / "brightness" / "graded-test.meta.json").read_text())
    assert meta["count"] == 6
    first_pred = float(rows[0].split(",")[1])
    assert first_pred > 10.0  # rescored with the offset, not reused


@pytest.mark.slow
def test_failing_model_is_recorded_and_others_go_on(tmp_path):
    results, _ = run_suite(
        tmp_path, registry_with(Brightness, Broken), models=[{"name": "broken"}, {"name": "brightness"}]
    )
    assert cell(results, "broken")["status"] == "ok"  # every image failed, recorded per image
    assert cell(results, "broken")["unscored"] == 6
    assert cell(results, "broken")["metrics"]["plcc"]["flag"]
    assert cell(results, "brightness")["status"] == "ok"
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "6 unscored" in board and "model exploded" in board


def test_per_image_failures_are_counted_not_invented(tmp_path):
    results, _ = run_suite(tmp_path, registry_with(Picky), models=[{"name": "picky"}])
    pair = cell(results, "picky")
    preds = (tmp_path / "out" / "predictions" / "picky" / "graded-test.csv").read_text().splitlines()[1:]
    failed = [r for r in preds if r.split(",")[1] == ""]
    assert pair["unscored"] == len(failed) > 0
    assert pair["scored"] + pair["unscored"] == 6
    assert all("too dark" in r for r in failed)


def test_corrupt_and_missing_images_are_unscored(tmp_path):
    root = make_graded_root(tmp_path / "data" / "graded")
    (root / "img01.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "img03.png").unlink()
    results, _ = run_suite(tmp_path, registry_with(Brightness), models=[{"name": "brightness"}])
    pair = cell(results, "brightness")
    assert pair["unscored"] == 2 and pair["scored"] == 4
    reasons = " ".join(pair["failure_reasons"])
    assert "not found" in reasons and ("cannot decode" in reasons or "not an image" in reasons)


def test_interrupted_scoring_leaves_nothing_trusted(tmp_path, monkeypatch):
    run_suite(tmp_path, registry_with(Brightness), models=[{"name": "brightness"}])
    csv_path = tmp_path / "out" / "predictions" / "brightness" / "graded-test.csv"
    before = csv_path.read_text()

    def interrupted(self, items):
        raise KeyboardInterrupt

    monkeypatch.setattr(Brightness, "score_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(tmp_path, registry_with(Brightness), force=True, models=[{"name": "brightness"}])
    # the finished file of the earlier run is untouched by the interrupted redo
    assert csv_path.read_text() == before
    leftovers = [p.name for p in csv_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_unknown_model_lists_close_names(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'brightness'"):
        run_suite(tmp_path, registry_with(Brightness), models=[{"name": "brightnes"}])


def test_unknown_model_option_is_an_error(tmp_path):
    with pytest.raises(UnknownNameError, match="no option 'ofset'.*offset"):
        run_suite(tmp_path, registry_with(Brightness), models=[{"name": "brightness", "options": {"ofset": 1}}])


def test_missing_dataset_stops_before_work(tmp_path):
    suite_path = write_suite(tmp_path / "suite.yaml")
    with pytest.raises(DataMissingError, match="labels.csv"):
        run_suite_file(suite_path, tmp_path / "out", data_root=str(tmp_path / "nowhere"),
                  registry=registry_with(Brightness, Darkness), progress=False)
    assert not (tmp_path / "out" / "predictions").exists()


def test_misspelled_suite_field_names_file_and_field(tmp_path):
    path = write_suite(tmp_path / "bad.yaml", models=[{"name": "brightness", "optoins": {}}])
    with pytest.raises(SuiteError, match=r"bad.yaml: field `models.0.optoins` .*Did you mean 'options'"):
        load_suite(path)


def test_suite_protocol_shape_is_checked(tmp_path):
    path = write_suite(tmp_path / "bad.yaml", protocol="cross_domain")
    with pytest.raises(SuiteError, match="in_domain"):
        load_suite(path)


class Unloadable(Brightness):
    """Fails to construct, like a model whose checkpoint is missing."""

    name = "unloadable"

    def __init__(self, **kwargs):
        raise FileNotFoundError("checkpoint folder /nowhere is missing")


def test_model_that_cannot_load_fails_its_cells_and_suite_goes_on(tmp_path):
    results, _ = run_suite(
        tmp_path, registry_with(Brightness, Unloadable), models=[{"name": "unloadable"}, {"name": "brightness"}]
    )
    assert cell(results, "unloadable")["status"] == "failed"
    assert "checkpoint folder /nowhere is missing" in cell(results, "unloadable")["error"]
    assert cell(results, "brightness")["status"] == "ok"
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    row = next(line for line in board.splitlines() if line.startswith("| unloadable"))
    assert "failed" in row


def test_labels_that_map_to_one_folder_are_refused(tmp_path):
    from iqabench.run.layout import slug

    assert slug("CLIP-IQA+") != slug("CLIP-IQA")
    with pytest.raises(Exception, match="share the folder"):
        run_suite(tmp_path, registry_with(Brightness), models=[{"name": "brightness", "label": "a b"},
                                                               {"name": "brightness", "label": "a-b"}])


def test_results_carry_no_machine_paths(tmp_path, monkeypatch):
    from iqabench.provenance import command_line, portable

    assert command_line(["/opt/venv/bin/iqabench", "run", "s.yaml"]) == "iqabench run s.yaml"
    assert portable({"a": ["/home/u/x", "/w/r/out"]}, home=Path("/home/u"), cwd=Path("/w/r")) == {"a": ["~/x", "out"]}
    monkeypatch.chdir(tmp_path)
    run_suite(tmp_path, registry_with(Brightness), models=[{"name": "brightness"}])
    text = (tmp_path / "out" / "results.json").read_text()
    assert str(tmp_path) not in text and '"root": "data/graded"' in text


def test_partial_training_from_other_settings_is_not_resumed(tmp_path):
    from iqabench.contracts.trainer import Trainer

    seen = []

    class Recorder(Trainer):
        name = "recorder"
        model = "brightness"

        def __init__(self, *, steps: int = 1):
            self.steps = steps

        def train(self, model_options, datasets, out_dir, *, seed=0, device="cpu"):
            seen.append(sorted(p.name for p in out_dir.iterdir()))
            return {"offset": float(self.steps)}

    registry = registry_with(Brightness)
    registry.register(types.SimpleNamespace(iqabench_trainers=hookimpl(lambda: [Recorder])), name="rec")
    partial = tmp_path / "out" / "checkpoints" / "brightness.partial"
    partial.mkdir(parents=True)
    (partial / "checkpoint-7").mkdir()  # left by a run with other settings, without our stamp
    (tmp_path / "out" / "suite.yaml").write_text("name: t\n")  # that run's copy of its suite
    entry = {"name": "brightness", "train": True, "trainer": "recorder", "trainer_options": {"steps": 2}}
    results, _ = run_suite(tmp_path, registry, models=[entry], train={"datasets": ["graded"]})
    assert seen == [["iqabench_partial.json"]]
    assert (tmp_path / "out" / "checkpoints" / "brightness" / "iqabench_training.json").exists()
    assert not partial.exists()
    assert results["models"][0]["options"]["offset"] == 2.0


class NeedsAccelerate(Brightness):
    """Fails to construct as a model does whose optional dependency is not installed."""

    name = "needs-accelerate"

    def __init__(self, **kwargs):
        raise ModuleNotFoundError("No module named 'accelerate'", name="accelerate")


def test_a_pair_failed_by_a_missing_module_names_the_extra_that_installs_it(tmp_path):
    from iqabench.commands.run import install_hints

    results, _ = run_suite(tmp_path, registry_with(Brightness, NeedsAccelerate),
                           models=[{"name": "needs-accelerate"}, {"name": "brightness"}])
    assert cell(results, "needs-accelerate")["status"] == "failed"
    # pyproject.toml lists accelerate under the `train` extra
    assert install_hints(results) == [
        "the Python module 'accelerate' is missing; the 'train' extra installs it: "
        "`pip install -c constraints.txt -e \".[train]\"` in a checkout of iqabench, "
        "`pip install \"iqabench[train]\"` otherwise."
    ]
