"""``iqabench score`` on folders: recursion, globs, ``--output`` written batch by batch and resumed, damage found.

Scores are checked against the formula of the ``brightness`` test model (the
mean grey level); resumption against the file an uninterrupted run writes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqabench import hookimpl
from iqabench.cli import main
from iqabench.errors import IQABenchError
from iqabench.registry.discovery import default_registry
from iqabench.scoring.image_files import find_images
from tests.helpers import Brightness

SCORED: list[int] = []  # batch sizes the model was given, across runs


class Counted(Brightness):
    """Brightness that notes every batch it scores, and stops (as Ctrl-C does) when told to."""

    name = "counted"
    stop_at_batch: int | None = None

    def score_batch(self, items):
        if Counted.stop_at_batch is not None and len(SCORED) == Counted.stop_at_batch:
            raise KeyboardInterrupt
        SCORED.append(len(items))
        return super().score_batch(items)


@pytest.fixture(autouse=True)
def counted_model():
    plugin = types.SimpleNamespace(iqabench_models=hookimpl(lambda: [Counted]))
    registry = default_registry()
    registry.register(plugin, name="score-cli-test")
    SCORED.clear()
    Counted.stop_at_batch = None
    try:
        yield
    finally:
        registry.plugin_manager.unregister(plugin)
        registry._entries = None


def write_image(path: Path, seed: int, size=(20, 16)) -> float:
    """Save a random image; return its mean grey level (the counted model's score)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return float(pixels.astype(np.float64).mean())


@pytest.fixture
def album(tmp_path) -> dict[str, float]:
    """photos/ with sub-folders, a hidden folder, a text file; its images' expected scores by path."""
    root = tmp_path / "photos"
    expected = {}
    for seed, name in enumerate(["b.png", "a.png", "trip/c.tif", "trip/day 2/d.png", "trip/e.bmp"]):
        expected[str(root / name)] = write_image(root / name, seed)
    write_image(root / ".thumbnails" / "x.png", 99)
    (root / "notes.txt").write_text("not an image")
    return expected


def rows_of(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".csv":
        return [{"image": r["image"], "score": float(r["score"]) if r["score"] else None, "error": r["error"] or None}
                for r in csv.DictReader(io.StringIO(text))]
    return [json.loads(line) for line in text.splitlines()]


def test_folders_are_searched_recursively_and_globs_expanded(album, tmp_path):
    root = tmp_path / "photos"
    found = find_images([root])
    assert found == sorted(album)  # every image once, sorted; no hidden folder, no text file
    assert find_images([f"{root}/**/*.png"]) == sorted(p for p in album if p.endswith(".png"))
    assert find_images([root / "b.png", root]) == [str(root / "b.png")] + [p for p in sorted(album)
                                                                             if p != str(root / "b.png")]
    assert find_images([root / "notes.txt"]) == [str(root / "notes.txt")]  # named explicitly: kept
    with pytest.raises(IQABenchError, match="no such file or folder"):
        find_images([tmp_path / "nowhere"])
    with pytest.raises(IQABenchError, match="matches no image files"):
        find_images([f"{root}/*.gif"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(IQABenchError, match="no image files in the folder"):
        find_images([tmp_path / "empty"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_output_is_written_and_a_rerun_scores_only_new_images(album, tmp_path, capsys, suffix):
    out = tmp_path / f"scores{suffix}"
    assert main(["score", "counted", str(tmp_path / "photos"), "--batch-size", "2", "--output", str(out)]) == 0
    rows = rows_of(out)
    assert [r["image"] for r in rows] == sorted(album)
    assert all(r["score"] == pytest.approx(album[r["image"]]) and r["error"] is None for r in rows)
    assert SCORED == [2, 2, 1]
    assert f"{out}: wrote 5 scores (0 failed" in capsys.readouterr().out

    album[str(tmp_path / "photos" / "new.png")] = write_image(tmp_path / "photos" / "new.png", 7)
    SCORED.clear()
    assert main(["score", "counted", str(tmp_path / "photos"), "--batch-size", "2", "--output", str(out)]) == 0
    assert SCORED == [1]  # only the new image
    rows = rows_of(out)
    assert sorted(r["image"] for r in rows) == sorted(album) and len(rows) == 6
    assert "5 images were already there" in capsys.readouterr().out


def test_an_interrupted_run_resumes_to_the_file_an_uninterrupted_one_writes(album, tmp_path, capsys):
    folder, whole, resumed = str(tmp_path / "photos"), tmp_path / "whole.csv", tmp_path / "resumed.csv"
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(whole), "--no-progress"]) == 0
    SCORED.clear()
    Counted.stop_at_batch = 1  # Ctrl-C while scoring the second batch
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(resumed), "--no-progress"]) == 130
    assert len(rows_of(resumed)) == 2  # the first batch was kept
    Counted.stop_at_batch = None
    SCORED.clear()
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(resumed), "--no-progress"]) == 0
    assert SCORED == [2, 1]
    assert resumed.read_text() == whole.read_text()


def test_a_batch_cut_short_by_a_kill_is_dropped_and_scored_again(album, tmp_path, capsys):
    folder, out = str(tmp_path / "photos"), tmp_path / "scores.csv"
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(out), "--no-progress"]) == 0
    whole = out.read_text()
    # a kill during the last batch's write: its row is half there, and the record still ends before it
    meta_path = Path(f"{out}.meta.json")
    meta = json.loads(meta_path.read_text())
    last_row = whole.splitlines()[-1]
    cut = whole[: -len(last_row) - 1]
    meta.update(bytes=len(cut.encode()), rows=4,
                sha256=hashlib.sha256(cut.encode()).hexdigest())
    meta_path.write_text(json.dumps(meta))
    out.write_text(cut + last_row[:12])  # "…/photos/t" with no newline: it parses as nothing sensible
    SCORED.clear()
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(out), "--no-progress"]) == 0
    assert SCORED == [1]
    assert out.read_text() == whole
    assert "dropped 12 bytes after the last complete batch" in capsys.readouterr().out


def test_an_image_changed_in_place_after_its_row_was_written_is_named_not_kept(album, tmp_path, capsys):
    folder, out = tmp_path / "photos", tmp_path / "scores.csv"
    command = ["score", "counted", str(folder), "--output", str(out), "--no-progress"]
    assert main(command) == 0
    capsys.readouterr()
    written = out.read_text()
    # another image under the same name, as a re-encode or an edit in place leaves it
    album[str(folder / "trip" / "c.tif")] = write_image(folder / "trip" / "c.tif", 50, size=(21, 16))
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"1 of the 5 images already scored in {out} changed" in error and f"the first {folder}/trip/c.tif" in error
    assert out.read_text() == written  # nothing written, nothing lost
    # an image deleted since is no stale score: the re-run goes on
    (folder / "b.png").unlink()
    del album[str(folder / "b.png")]
    assert main([*command, "--force"]) == 0
    (folder / "a.png").unlink()
    SCORED.clear()
    assert main(command) == 0 and SCORED == []
    rows = {r["image"]: r["score"] for r in rows_of(out)}
    assert rows[str(folder / "trip" / "c.tif")] == pytest.approx(album[str(folder / "trip" / "c.tif")])


def test_an_output_written_before_image_states_were_kept_still_resumes(album, tmp_path):
    folder, out = str(tmp_path / "photos"), tmp_path / "scores.jsonl"
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(out), "--no-progress"]) == 0
    meta_path = Path(f"{out}.meta.json")
    meta = json.loads(meta_path.read_text())
    text = out.read_text()
    kept = "".join(text.splitlines(keepends=True)[:2])  # a version-1 file: two rows, no image states beside them
    meta.update(version=1, rows=2, bytes=len(kept.encode()), sha256=hashlib.sha256(kept.encode()).hexdigest())
    meta_path.write_text(json.dumps(meta))
    out.write_text(kept)
    Path(f"{out}.images.tsv").unlink()
    SCORED.clear()
    assert main(["score", "counted", folder, "--batch-size", "2", "--output", str(out), "--no-progress"]) == 0
    assert SCORED == [2, 1] and out.read_text() == text
    assert json.loads(meta_path.read_text())["version"] == 1 and not Path(f"{out}.images.tsv").exists()


def test_a_damaged_foreign_or_differently_made_output_is_left_untouched(album, tmp_path, capsys):
    folder, out = str(tmp_path / "photos"), tmp_path / "scores.csv"
    assert main(["score", "counted", folder, "--output", str(out), "--no-progress"]) == 0
    capsys.readouterr()

    edited = out.read_text().replace(".png,", ".png,9", 1)  # a score changed by hand inside the recorded part
    out.write_text(edited)
    assert main(["score", "counted", folder, "--output", str(out), "--no-progress"]) == 2
    assert "no longer matches its record" in capsys.readouterr().err and out.read_text() == edited

    assert main(["score", "counted", folder, "--output", str(out), "--no-progress", "--force"]) == 0
    assert main(["score", "counted", folder, "--output", str(out), "-o", "offset=1", "--no-progress"]) == 2
    assert "other settings (options: {} then, {'offset': 1} now)" in capsys.readouterr().err

    foreign = tmp_path / "mine.jsonl"
    foreign.write_text('{"image": "x"}\n')
    assert main(["score", "counted", folder, "--output", str(foreign), "--no-progress"]) == 2
    assert "not written by `iqabench score`" in capsys.readouterr().err
    assert foreign.read_text() == '{"image": "x"}\n'
    out.unlink()  # the output gone, its record left (a kill right after the record was first written): start over
    assert main(["score", "counted", folder, "--output", str(out), "--no-progress"]) == 0
    assert len(rows_of(out)) == len(album)
    assert main(["score", "counted", folder, "--output", str(tmp_path / "x.txt")]) == 2
    assert main(["score", "counted", folder, "--force"]) == 2
    assert "without --output" in capsys.readouterr().err


def test_unreadable_images_are_rows_with_their_reason_and_the_exit_status_says_so(album, tmp_path, capsys):
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "scores.jsonl"
    assert main(["score", "counted", str(tmp_path / "photos"), "--output", str(out), "--num-workers", "1"]) == 1
    broken = [r for r in rows_of(out) if r["image"].endswith("broken.png")]
    assert broken[0]["score"] is None and "broken.png" in broken[0]["error"]
    captured = capsys.readouterr()
    assert "1 failed" in captured.out and "scoring with counted" in captured.err  # the progress bar


def test_printed_scores_without_output(album, tmp_path, capsys):
    assert main(["score", "counted", f"{tmp_path}/photos/**/*.png", "--json", "--no-progress"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == sorted(p for p in album if p.endswith(".png"))
    assert all(line["score"] == pytest.approx(album[line["image"]]) for line in lines)
