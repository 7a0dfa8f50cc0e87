"""Nothing wrong is ever published: damaged files, concurrent runs, moved folders, bad input (issue 13)."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from iqabench import hookimpl
from iqabench.contracts.trainer import Trainer
from iqabench.errors import ImageLoadError, IQABenchError, SuiteError
from iqabench.registry.options import OptionValueError
from iqabench.run.layout import RunLayout, RunLockedError
from iqabench.run.runner import run_suite
from iqabench.scoring.images import ImageReading, load_image
from tests.helpers import Counting, make_graded_root, registry_with

REPO = Path(__file__).resolve().parent.parent


def suite_file(tmp_path: Path, **overrides) -> Path:
    spec = {"name": "t", "protocol": "single_domain", "batch_size": 4, "num_workers": 0, "bootstrap": 100,
            "efficiency": {"enabled": False}, "test": [{"dataset": "graded", "split": "all"}],
            "models": [{"name": "counting"}], **overrides}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(tmp_path: Path, registry=None, out: Path | None = None, **overrides) -> dict:
    if not (tmp_path / "data" / "graded").exists():
        make_graded_root(tmp_path / "data" / "graded", count=40)
    return run_suite(suite_file(tmp_path, **overrides), out or tmp_path / "out", data_root=str(tmp_path / "data"),
                     registry=registry or registry_with(Counting), progress=False)


def plcc(results: dict) -> float:
    return results["results"][0]["metrics"]["plcc"]["value"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["cut at a row boundary", "emptied", "cut mid-line", "a value edited"])
def test_a_damaged_predictions_file_is_scored_again_not_trusted(tmp_path, damage, caplog):
    first = run(tmp_path)
    csv = tmp_path / "out" / "predictions" / "counting" / "graded-all.csv"
    lines = csv.read_text().splitlines(keepends=True)
    text = {
        "cut at a row boundary": "".join(lines[:11]),
        "emptied": "",
        "cut mid-line": "".join(lines[:11]) + lines[11][:7],
        "a value edited": "".join(lines).replace(lines[5].split(",")[1], "999.0", 1),
    }[damage]
    csv.write_text(text)
    Counting.scored.clear()
    second = run(tmp_path)
    assert sum(Counting.scored) == 40  # every image scored again
    assert plcc(second) == plcc(first) and second["results"][0]["count"] == 40
    assert "does not match its checksum" in caplog.text


def test_an_intact_predictions_file_is_reused(tmp_path):
    run(tmp_path)
    Counting.scored.clear()
    run(tmp_path)
    assert Counting.scored == []


def _hold_lock(folder: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from iqabench.run.layout import RunLayout
        with RunLayout({str(folder)!r}).lock("iqabench run other.yaml"):
            print("locked", flush=True)
            time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(tmp_path):
    holder = _hold_lock(tmp_path / "out")
    try:
        with pytest.raises(RunLockedError, match=rf"in use by process {holder.pid} .*iqabench run other.yaml"):
            run(tmp_path)
        assert not (tmp_path / "out" / "predictions").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # killed with -9: the kernel dropped its lock, so nothing stale blocks the next run
    assert run(tmp_path)["results"][0]["status"] == "ok"


def test_the_lock_is_released_when_a_run_ends(tmp_path):
    run(tmp_path)
    with RunLayout(tmp_path / "out").lock():
        pass
    assert not (tmp_path / "out" / ".iqabench.lock.json").exists()


class Fitting(Trainer):
    """Writes a checkpoint file and returns the option that loads it, as real trainers do."""

    name = "fitting"
    model = "offsetting"

    def train(self, model_options, datasets, out_dir, *, seed=0, device="cpu"):
        (out_dir / "weights.txt").write_text("3.0")
        return {"weights": str(out_dir / "weights.txt")}


class Offsetting(Counting):
    name = "offsetting"
    trainer = "fitting"

    def __init__(self, *, weights: str | None = None, device: str = "cpu", dtype: str = "float32") -> None:
        super().__init__(offset=float(Path(weights).read_text()) if weights else 0.0, device=device, dtype=dtype)
        self.weights = weights


@pytest.mark.slow
def test_a_copied_run_folder_resumes_without_training_or_scoring_again(tmp_path):
    registry = registry_with(Offsetting)
    registry.register(types.SimpleNamespace(iqabench_trainers=hookimpl(lambda: [Fitting])), name="fit")
    setup = {"models": [{"name": "offsetting", "train": True}], "train": {"datasets": [{"dataset": "graded",
                                                                                        "split": "all"}]}}
    first = run(tmp_path, registry, **setup)
    # the prediction files name the trained weights relative to the run, not by this machine's path
    meta = json.loads(next((tmp_path / "out" / "predictions").rglob("*.meta.json")).read_text())
    assert meta["model_config"]["weights"] == {"relative_path": "checkpoints/offsetting/weights.txt"}
    shutil.copytree(tmp_path / "out", tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "out")  # the original is gone: the copy must stand on its own
    Counting.scored.clear()
    second = run(tmp_path, registry, out=tmp_path / "elsewhere", **setup)
    assert Counting.scored == [] and second["models"][0]["training"]["status"] == "reused"
    assert plcc(second) == plcc(first)
    assert second["models"][0]["options"]["weights"].endswith("elsewhere/checkpoints/offsetting/weights.txt")


def test_option_values_and_the_reference_file_are_checked_before_any_work(tmp_path):
    with pytest.raises(OptionValueError, match="option 'offset' must be float"):
        run(tmp_path, models=[{"name": "counting", "options": {"offset": "abc"}}])
    with pytest.raises(SuiteError, match="reference.*does not exist"):
        run(tmp_path, reference="no-such-table.csv")
    assert not (tmp_path / "out").exists()


def test_a_full_disk_ends_in_one_error_line_and_keeps_earlier_results(tmp_path, monkeypatch, capsys):
    from iqabench.cli import main

    monkeypatch.setattr("iqabench.registry.discovery._DEFAULT", registry_with(Counting))
    make_graded_root(tmp_path / "data" / "graded", count=40)
    path = suite_file(tmp_path)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--data-root", str(tmp_path / "data"),
                 "--no-progress"]) == 0
    before = (tmp_path / "out" / "results.json").read_text()

    def full(path, value):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    # the re-run reuses every prediction; the disk is full when it writes results.json
    monkeypatch.setattr("iqabench.reports.results.atomic_write_json", full)
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--data-root", str(tmp_path / "data"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("iqabench: error: No space left on device: ")
    assert "Traceback" not in "\n".join(err)
    assert (tmp_path / "out" / "results.json").read_text() == before


def test_an_output_folder_that_cannot_be_created_is_one_error_line(tmp_path, capsys, monkeypatch):
    from iqabench.cli import main

    monkeypatch.setattr("iqabench.registry.discovery._DEFAULT", registry_with(Counting))
    (tmp_path / "a-file").write_text("not a folder")
    make_graded_root(tmp_path / "data" / "graded", count=4)
    code = main(["run", str(suite_file(tmp_path)), "--out", str(tmp_path / "a-file" / "out"),
                 "--data-root", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "iqabench: error: Not a directory" in err and "Traceback" not in err


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "must be at least 1, got 0"),
    (["--batch-size", "-5"], "must be at least 1, got -5"),
    (["--dtype", "float8"], "invalid choice: 'float8'"),
])
def test_bad_command_line_values_are_refused(tmp_path, capsys, flags, message):
    from iqabench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["score", "niqe", str(tmp_path / "x.png"), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# -- images ------------------------------------------------------------------------------------------------------


def test_a_float_image_outside_zero_to_one_is_refused_not_clipped(tmp_path):
    path = tmp_path / "sum.tiff"
    Image.fromarray(np.array([[0.0, 382.5, 765.0]], dtype=np.float32), mode="F").save(path)
    with pytest.raises(ImageLoadError, match=r"float image with values 0\.\.765.*\[0, 1\]"):
        load_image(path)
    ok = tmp_path / "unit.tiff"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F").save(ok)
    assert np.asarray(load_image(ok))[0, :, 0].tolist() == [0, 128, 255]


def test_the_exif_orientation_is_applied_as_a_viewer_would(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255  # left half white, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=100)
    shown = np.asarray(load_image(path))
    assert shown.shape == (40, 20, 3)  # portrait, as shown
    assert shown[:20].mean() > 200 and shown[20:].mean() < 50  # the white half is now on top
    stored = np.asarray(load_image(path, ImageReading(exif_orientation=False)))
    assert stored.shape == (20, 40, 3)


def test_only_the_first_frame_of_an_animation_is_read(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), (200, 200, 200)), Image.new("RGB", (8, 8), (0, 0, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(path)).mean() > 150


def test_an_image_above_the_size_limit_is_refused_unless_it_is_downscaled(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(path)
    with pytest.raises(ImageLoadError, match=r"400x300 \(0 MP\), above the 0.1 MP limit.*max_side"):
        load_image(path, ImageReading(max_megapixels=0.1))
    assert load_image(path, ImageReading(max_megapixels=0.1, downscaled_to=200)).size == (400, 300)
    # 0.12 MP is above 4 x 0.02 MP: refused even when it would be downscaled (a decompression bomb's shape)
    with pytest.raises(ImageLoadError, match=r"even downscaled.*above 4 x the 0.02 MP limit"):
        load_image(path, ImageReading(max_megapixels=0.02, downscaled_to=200))


def test_warnings_print_as_one_line(capsys):
    import warnings

    from iqabench.cli import _one_line_warning

    _one_line_warning(warnings.WarningMessage("first line\nsecond", FutureWarning, "x.py", 3).message,
                      FutureWarning, "x.py", 3)
    assert capsys.readouterr().err == "iqabench: warning: FutureWarning: first line\n"


def test_only_existing_files_inside_the_run_are_written_relative(tmp_path, monkeypatch):
    """Run from inside the output folder (`--out .`): option values such as "cuda" or a prompt are not paths."""
    from iqabench.run.training import relative_paths

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "w.txt").write_text("1")
    monkeypatch.chdir(tmp_path)
    options = {"device": "cuda", "prompt": "rate it", "weights": "checkpoints/w.txt", "other": "/no/such/file",
               "count": 3}
    assert relative_paths(options, Path(".")) == {
        "device": "cuda", "prompt": "rate it", "weights": {"relative_path": "checkpoints/w.txt"},
        "other": "/no/such/file", "count": 3}


def test_a_failure_of_the_main_process_alone_reaches_every_process():
    """`Processes.main_only`: the others get the result, or an error naming the main process's failure."""
    from iqabench.run.distributed import Processes

    def exchange(index: int, main_said: list) -> Processes:
        def broadcast(value):
            if index == 0:
                main_said.append(value)
            return main_said[0]
        return Processes(index, 2, lambda: None, broadcast, lambda value: [value, value])

    said: list = []
    main, other = exchange(0, said), exchange(1, said)
    assert main.main_only(lambda: 41 + 1) == 42 and other.main_only(lambda: pytest.fail("ran outside main")) == 42
    said.clear()
    with pytest.raises(ZeroDivisionError):
        main.main_only(lambda: 1 / 0)
    with pytest.raises(IQABenchError, match="the main process failed: ZeroDivisionError: division by zero"):
        other.main_only(lambda: None)


def test_suite_paths_expand_home_and_variables_and_are_relative_to_the_suite(tmp_path, monkeypatch):
    from iqabench.run.plan import suite_relative

    monkeypatch.setenv("SCRATCH", "/scratch/me")
    monkeypatch.setenv("HOME", "/home/me")
    suite = tmp_path / "suites" / "s.yaml"
    assert suite_relative(suite, "$SCRATCH/iqa") == "/scratch/me/iqa"
    assert suite_relative(suite, "~/ref.csv") == "/home/me/ref.csv"
    assert suite_relative(suite, "data") == str((tmp_path / "suites" / "data").resolve())
    assert suite_relative(suite, None) is None


def test_a_training_step_never_overwrites_other_work_and_reuses_its_own(tmp_path):
    """`cached_step` (under `iqabench train --out DIR`): other settings or a foreign folder are refused and left
    as they were; the same settings are reused without running the work again."""
    from iqabench.run.training import StaleCheckpointError, cached_step

    calls = []

    def work(folder: Path) -> dict:
        calls.append(folder)
        (folder / "weights.txt").write_text("1")
        return {"weights": str(folder / "weights.txt")}

    out = tmp_path / "ckpt"
    first = cached_step(out, {"lr": 1}, work, replace_stale=False)
    assert first.status == "trained" and first.output["weights"] == str((out / "weights.txt").resolve())
    again = cached_step(out, {"lr": 1}, work, replace_stale=False)
    assert again.status == "reused" and len(calls) == 1
    with pytest.raises(StaleCheckpointError, match="made with other settings"):
        cached_step(out, {"lr": 2}, work, replace_stale=False)
    assert (out / "weights.txt").read_text() == "1" and len(calls) == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(IQABenchError, match="is not an iqabench output"):
        cached_step(foreign, {"lr": 1}, work)
    assert (foreign / "notes.txt").read_text() == "keep" and len(calls) == 1
