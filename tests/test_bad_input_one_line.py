"""Nothing forged, and every bad input one clear line (issue 23, items 3, 5, 6, 7 and 10, and the tracebacks).

Each test reproduces a case that, before issue 23, published numbers of other inputs or ended in a traceback.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from iqabench.cli import main
from iqabench.contracts.dataset import DatasetWarning, build_index
from iqabench.errors import IQABenchError, SuiteError
from iqabench.run.runner import run_suite
from tests.helpers import Brightness, Darkness, GradedSet, make_graded_root, registry_with

REPO = Path(__file__).resolve().parent.parent


def write_suite(folder: Path, **overrides) -> Path:
    spec = {"name": "bad-input", "protocol": "single_domain", "batch_size": 4, "num_workers": 0, "bootstrap": 100,
            "efficiency": {"enabled": False}, "test": [{"dataset": "graded", "split": "all"}],
            "models": [{"name": "brightness"}, {"name": "darkness"}], **overrides}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(tmp_path: Path, out: Path | None = None, **overrides) -> dict:
    if not (tmp_path / "data" / "graded").exists():
        make_graded_root(tmp_path / "data" / "graded", count=12)
    return run_suite(write_suite(tmp_path, **overrides), out or tmp_path / "out", data_root=str(tmp_path / "data"),
                     registry=registry_with(Brightness, Darkness), progress=False)


def cli(monkeypatch, *argv: str) -> int:
    """``iqabench ARGV`` with the test plugins registered; its exit code."""
    monkeypatch.setattr("iqabench.registry.discovery._DEFAULT", registry_with(Brightness, Darkness))
    return main(list(argv))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert sum(line.startswith("iqabench: error: ") for line in err.splitlines()) == 1, err
    return err


# -- item 3: two `score --output` on one file ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_score_output_on_the_same_file_is_refused_naming_the_holder(tmp_path, monkeypatch, capsys):
    make_graded_root(tmp_path / "images", count=4)
    output = tmp_path / "scores.csv"
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from iqabench.scoring.score_output import held
        with held({str(output)!r}, "iqabench score other"):
            print("held", flush=True)
            time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cli(monkeypatch, "score", "brightness", str(tmp_path / "images"), "--output", str(output))
        err = one_error_line(capsys)
        assert f"process {holder.pid}" in err and "iqabench score other" in err
        assert not output.exists()  # today: both write, 2,856 rows for 1,956 images
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["score", "brightness", str(tmp_path / "images"), "--output", str(output)]) == 0
    assert len(output.read_text().splitlines()) == 1 + 4


# -- item 5: an image listed twice -----------------------------------------------------------------------------------


def _index(rows):
    return build_index("toy", Path("/data/toy"), rows, label_files=["labels.csv"], nominal_range=None,
                       direction="higher_better", split_source="all", official_count=None)


def test_an_image_listed_twice_with_other_labels_is_refused_with_both_rows():
    rows = [{"image": f"{i}.png", "mos_raw": float(i), "source": f"labels.csv, line {i + 2}"} for i in range(12)]
    rows.append({"image": "3.png", "mos_raw": 11.0, "source": "labels.csv, line 14"})
    with pytest.raises(IQABenchError, match=r"'3.png' is listed twice.*line 5 \(score 3.0.*line 14 \(score 11.0"):
        _index(rows)  # today: n = 13 and the pair used twice


def test_an_identical_repeated_row_is_read_once_with_a_warning():
    rows = [{"image": f"{i}.png", "mos_raw": float(i)} for i in range(12)] + [{"image": "3.png", "mos_raw": 3.0}]
    with pytest.warns(DatasetWarning, match="1 row.* repeat an earlier row exactly"):
        index = _index(rows)
    assert [r.image for r in index.records] == [f"{i}.png" for i in range(12)]
    assert index.provenance.rescale_min == 0.0 and index.records[11].mos == 5.0


# -- item 6: leaderboard RUN checks before it draws ----------------------------------------------------------------


def test_the_leaderboard_is_not_redrawn_from_predictions_that_fail_their_checksum(tmp_path, monkeypatch, capsys):
    run(tmp_path)
    csv = tmp_path / "out" / "predictions" / "brightness" / "graded-all.csv"
    header, *rows = csv.read_text().splitlines()
    inverted = [",".join([r.split(",")[0], str(-float(r.split(",")[1])), *r.split(",")[2:]]) for r in rows]
    csv.write_text("\n".join([header, *inverted]) + "\n")
    figure = tmp_path / "out" / "figures" / "predictions-brightness.png"
    before = figure.read_bytes()
    cli(monkeypatch, "leaderboard", str(tmp_path / "out"))
    err = one_error_line(capsys)
    assert "brightness on graded-all" in err and "does not match the checksum" in err
    assert figure.read_bytes() == before  # today: redrawn with the opposite trend under the old PLCC


def test_numbers_edited_into_results_json_are_reported_not_published(tmp_path, monkeypatch, capsys):
    run(tmp_path)
    path = tmp_path / "out" / "results.json"
    results = json.loads(path.read_text())
    true_plcc = results["results"][0]["metrics"]["plcc"]["value"]
    results["results"][0]["metrics"]["plcc"]["value"] = 0.999
    path.write_text(json.dumps(results))
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    cli(monkeypatch, "leaderboard", str(tmp_path / "out"))
    err = one_error_line(capsys)
    assert f"results.json says PLCC 0.999, but its predictions give {true_plcc!r}" in err
    assert (tmp_path / "out" / "leaderboard.md").read_text() == board


@pytest.mark.parametrize("damage", ["no models", "a list", "a cut CSV", "a non-numeric CSV"])
def test_a_damaged_results_folder_is_one_error_line(tmp_path, monkeypatch, capsys, damage):
    run(tmp_path)
    path = tmp_path / "out" / "results.json"
    csv = tmp_path / "out" / "predictions" / "darkness" / "graded-all.csv"
    if damage == "no models":
        results = json.loads(path.read_text())
        del results["models"]
        path.write_text(json.dumps(results))
    elif damage == "a list":
        path.write_text("[1, 2, 3]")
    elif damage == "a cut CSV":
        csv.write_text(csv.read_text()[:40])
    else:  # with its checksums "repaired", as an editor might
        text = csv.read_text().replace(csv.read_text().splitlines()[3].split(",")[1], "abc", 1)
        csv.write_text(text)
        import hashlib

        digest = hashlib.sha256(text.encode()).hexdigest()
        meta = csv.with_name("graded-all.meta.json")
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "csv_sha256": digest}))
        results = json.loads(path.read_text())
        for pair in results["results"]:
            pair["meta"]["csv_sha256"] = digest if pair["model"] == "darkness" else pair["meta"]["csv_sha256"]
        path.write_text(json.dumps(results))
    assert cli(monkeypatch, "leaderboard", str(tmp_path / "out")) == 2
    err = one_error_line(capsys)
    if damage == "no models":
        assert "numbers for model 'brightness' (no entry in `models`)" in err


# -- item 7: a suite writes only where it should -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../../victim", "a/b", "..", ".hidden", ""])
def test_a_suite_name_that_is_not_a_folder_name_is_refused(tmp_path, name):
    with pytest.raises(SuiteError, match="field `name`"):
        run(tmp_path, name=name)


def test_a_suite_name_never_reaches_outside_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "leaderboard.md").write_text("mine")
    make_graded_root(tmp_path / "data" / "graded", count=12)
    path = write_suite(tmp_path, name="../victim")
    code = cli(monkeypatch, "run", str(path), "--data-root", str(tmp_path / "data"), "--no-progress")
    one_error_line(capsys)
    assert code == 2 and (victim / "leaderboard.md").read_text() == "mine" and sorted(os.listdir(victim)) == [
        "leaderboard.md"]


@pytest.mark.parametrize("holds", ["other files", "a run of another suite"])
def test_a_run_writes_only_into_its_own_or_a_new_folder(tmp_path, holds):
    out = tmp_path / "somewhere"
    out.mkdir()
    if holds == "other files":
        (out / "results.json").write_text("precious")
    else:
        run(tmp_path, out=out, name="other-suite")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(IQABenchError, match="writes only into a new or empty folder"):
        run(tmp_path, out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert run(tmp_path, out=tmp_path / "empty")["results"][0]["status"] == "ok"
    assert run(tmp_path, out=tmp_path / "empty")["results"][0]["status"] == "ok"  # its own folder: resumed


@pytest.mark.parametrize("text", ["root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/sh\n",
                                  "table,model,dataset,plcc,srcc\nT,A,graded,0.5\n",
                                  "table,model,dataset,plcc,srcc\nT,A,graded,high,0.5\n",
                                  "model,dataset,plcc,srcc\nA,graded,1.5,0.5\n"])
def test_a_reference_that_is_not_a_reference_table_is_refused_before_any_work(tmp_path, text):
    (tmp_path / "ref.csv").write_text(text)
    with pytest.raises(SuiteError, match=r"field `reference`: .*ref.csv"):
        run(tmp_path, reference="ref.csv")  # today: copied into results.json, or a KeyError after the scoring
    assert not (tmp_path / "out").exists()


def test_the_synthetic_dataset_is_generated_only_into_a_root_of_its_own(tmp_path):
    from iqabench_plugins.synthetic.dataset import Synthetic

    system = tmp_path / "etc"
    system.mkdir()
    (system / "passwd").write_text("root:x:0:0")
    with pytest.raises(IQABenchError, match="not a synthetic-dataset root"):
        Synthetic(root=system, references=["camera"], distortions=["jpeg"], size=(192, 192)).load()
    assert sorted(os.listdir(system)) == ["passwd"]  # today: 192x192/ generated inside it


# -- item 10: labels, bootstrap, file modes ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_score_that_is_not_a_finite_number_is_refused_naming_the_row(value):
    rows = [{"image": f"{i}.png", "mos_raw": float(i), "source": f"labels.csv, line {i + 2}"} for i in range(12)]
    rows[4]["mos_raw"] = float(value)
    with pytest.raises(IQABenchError, match=rf"labels.csv, line 6 has the score {value} for '4.png', not a finite"):
        _index(rows)  # today: every rescaled score NaN, flagged only in the table


@pytest.mark.parametrize("bootstrap, message", [
    (True, "valid integer"), (1, "at least 100 resamples"), (99, "at least 100 resamples"),
    (1e20, "valid integer"), (10**20, "less than or equal to 100000"), (-1, "greater than or equal to 0"),
])
def test_bootstrap_must_be_zero_or_a_sensible_count(tmp_path, bootstrap, message):
    with pytest.raises(SuiteError, match=f"field `bootstrap`.*{message}"):
        run(tmp_path, bootstrap=bootstrap)


def test_result_files_get_the_mode_of_any_new_file(tmp_path):
    mask = os.umask(0o022)
    try:
        run(tmp_path)
    finally:
        os.umask(mask)
    out = tmp_path / "out"
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")
             if p.is_file() and not p.name.startswith(".")}
    assert modes["run.log"] == 0o644
    assert {name: mode for name, mode in modes.items() if mode != 0o644} == {}  # today: results 0600


# -- tracebacks where one line is promised -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["an existing file", "/dev/null", "a folder under /proc"])
def test_an_impossible_out_is_one_error_line(tmp_path, monkeypatch, capsys, where):
    make_graded_root(tmp_path / "data" / "graded", count=12)
    out = {"an existing file": str(tmp_path / "a-file"), "/dev/null": "/dev/null",
           "a folder under /proc": "/proc/no-such-process/out"}[where]
    (tmp_path / "a-file").write_text("keep me")
    code = cli(monkeypatch, "run", str(write_suite(tmp_path)), "--out", out, "--data-root",
                  str(tmp_path / "data"), "--no-progress")
    one_error_line(capsys)
    assert code == 2 and (tmp_path / "a-file").read_text() == "keep me"


def test_an_unwritable_home_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", "/proc/no-such-home")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    assert main(["data", "show", "synthetic", "-o", "size=192x192"]) == 2  # generated into ~/.cache
    assert "No such file or directory" in one_error_line(capsys)


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, monkeypatch, capsys):
    """`iqabench data show ... | head`: the pipe closes while iqabench still prints."""

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("fileno")

    make_graded_root(tmp_path / "graded", count=12)
    monkeypatch.setattr("iqabench.registry.discovery._DEFAULT", registry_with(Brightness, datasets=[GradedSet]))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["data", "show", "graded", "--root", str(tmp_path / "graded")]) == 141
    assert main(["list"]) == 141
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("command", [["list"], ["list", "models", "--json"]])
def test_a_closed_pipe_ends_the_command_without_a_traceback(command):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) has gone before iqabench writes
    try:
        done = subprocess.run([sys.executable, "-m", "iqabench", *command], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120, cwd=REPO)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""  # today: a BrokenPipeError traceback


def test_data_show_says_what_data_show_accepts(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    assert main(["data", "show", "tid2013", "--data-root", str(tmp_path)]) == 2  # today: no such flag
    err = one_error_line(capsys)
    assert f"Expected under {tmp_path / 'tid2013'}" in err and "--root DIR" in err and "--data-root DIR" in err


def test_describe_without_a_data_root_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    assert main(["describe", "q-insight", "--dataset", "deqa-meta", "--out", str(tmp_path / "t.jsonl")]) == 2
    err = one_error_line(capsys)
    assert "None" not in err and "Expected under <data root>/deqa-meta (no data root is set)" in err


class OtherGraded(GradedSet):
    name = "graded2"
    title = "Graded 2"
    default_dir = "graded2"


def test_the_missing_datasets_are_counted_once_each(tmp_path):
    suite = write_suite(tmp_path, train={"datasets": [{"dataset": "graded", "split": "train"}]},
                        models=[{"name": "brightness"}],
                        test=[{"dataset": "graded", "split": "test"}, {"dataset": "graded2", "split": "test"}])
    with pytest.raises(IQABenchError) as error:
        run_suite(suite, tmp_path / "out", data_root=str(tmp_path / "nothing"),
                  registry=registry_with(Brightness, datasets=[GradedSet, OtherGraded]), progress=False)
    assert "(1 more dataset(s) missing: graded2;" in str(error.value)  # today: "2 more"
