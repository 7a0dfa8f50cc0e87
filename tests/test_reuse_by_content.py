"""Reuse follows content, not names (issue 23, item 1; items 4 and 9).

A blurred image, a checkpoint retrained into the same folder or a plugin's scoring code edited in place must be
scored again; a resumed run must publish what the first run did; parts of a suite run that read different data
must not share a table. The expected numbers come from a fresh run on the changed inputs.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from iqabench import content
from iqabench.api import ModelTraits, Score
from iqabench.run.merge import MergeError, merge_runs
from iqabench.run.runner import run_suite
from tests.helpers import Counting, Darkness, GradedSet, make_graded_root, registry_with


class Weighted(Counting):
    """Brightness times a weight read from a checkpoint: a file, or ``weight.txt`` in a folder."""

    name = "weighted"

    def __init__(self, *, weights: str = "", device: str = "cpu", dtype: str = "float32") -> None:
        super().__init__(device=device, dtype=dtype)
        self.weights = weights
        path = Path(weights)
        self.weight = float((path / "weight.txt" if path.is_dir() else path).read_text())

    def score_batch(self, items):
        Counting.scored.append(len(items))
        return [Score.ok(self.weight * v) for v in items]


class Sampling(Counting):
    """Brightness plus noise drawn while scoring, as a sampling MLLM draws its answers."""

    name = "sampling"
    traits = ModelTraits(samples=True)

    def score_batch(self, items):
        Counting.scored.append(len(items))
        return [Score.ok(v + 50.0 * float(torch.rand(()))) for v in items]


def write_suite(folder: Path, **overrides) -> Path:
    spec = {"name": "content", "protocol": "single_domain", "batch_size": 4, "num_workers": 0, "bootstrap": 100,
            "efficiency": {"enabled": False}, "test": [{"dataset": "graded", "split": "all"}],
            "models": [{"name": "counting"}], **overrides}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(tmp_path: Path, out: str = "out", registry=None, data: str = "data", **overrides) -> dict:
    if not (tmp_path / data / "graded").exists():
        make_graded_root(tmp_path / data / "graded", count=24)
    return run_suite(write_suite(tmp_path, **overrides), tmp_path / out, data_root=str(tmp_path / data),
                     registry=registry or registry_with(Counting, Weighted, Sampling, Darkness), progress=False)


def plcc(results: dict, model: int = 0) -> float:
    return [p for p in results["results"] if p["model"] == results["models"][model]["key"]][0]["metrics"]["plcc"][
        "value"]


def invert_image(path: Path) -> None:
    """Rewrite an image in place with other pixels (the issue blurred a KonIQ image)."""
    pixels = np.asarray(Image.open(path))
    Image.fromarray((255 - pixels).astype(np.uint8)).save(path)


@pytest.fixture(autouse=True)
def _fresh_counts():
    Counting.scored.clear()
    yield


# -- item 1: images, checkpoints, code, sampling -----------------------------------------------------------------


def test_an_image_changed_in_place_is_scored_again_as_a_fresh_run_scores_it(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="iqabench")
    first = run(tmp_path)
    for name in ("img03.png", "img20.png"):
        invert_image(tmp_path / "data" / "graded" / name)
    Counting.scored.clear()
    again = run(tmp_path)
    assert sum(Counting.scored) == 24  # today: 0, and PLCC of the old pixels reported
    assert "scoring again: the image files changed since it was scored" in caplog.text
    fresh = run(tmp_path, out="fresh")
    assert plcc(again) == plcc(fresh) and plcc(again) != plcc(first)


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_checkpoint_replaced_in_place_is_scored_again(tmp_path, kind):
    """Retraining into the same folder is the common way; the path stays, the weights change."""
    weights = tmp_path / ("weights.txt" if kind == "file" else "checkpoint")

    def save(value: str) -> None:
        if kind == "file":
            weights.write_text(value)
        else:
            shutil.rmtree(weights, ignore_errors=True)
            weights.mkdir()
            (weights / "weight.txt").write_text(value)

    save("1.0")
    models = [{"name": "weighted", "options": {"weights": str(weights)}}]
    first = run(tmp_path, models=models)
    assert plcc(first) > 0.9
    save("-1.0")  # same path and length, other weights
    Counting.scored.clear()
    again = run(tmp_path, models=models)
    assert sum(Counting.scored) == 24 and plcc(again) == pytest.approx(-plcc(first))


def test_editing_a_plugin_s_scoring_code_scores_again(tmp_path, monkeypatch):
    """A third-party author iterating on a model: same names and options, other code."""
    package = tmp_path / "plugins" / "plug23"
    package.mkdir(parents=True)
    source = textwrap.dedent("""
        from iqabench import Model, Score
        from tests.helpers import brightness


        class Edited(Model):
            name = "edited"
            score_range = (0.0, 255.0)

            def preprocessor(self):
                return brightness

            def score_batch(self, items):
                return [Score.ok(SIGN * v) for v in items]


        SIGN = 1.0
    """)
    (package / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.delitem(sys.modules, "plug23", raising=False)
    module = importlib.import_module("plug23")
    try:
        models = [{"name": "edited"}]
        first = run(tmp_path, registry=registry_with(module.Edited), models=models)
        (package / "__init__.py").write_text(source.replace("SIGN = 1.0", "SIGN = -1.0"))
        module = importlib.reload(module)
        again = run(tmp_path, registry=registry_with(module.Edited), models=models)
        assert plcc(again) == pytest.approx(-plcc(first))  # today: the first run's predictions, reused
        assert again["results"][0]["meta"]["inputs"]["code"] != first["results"][0]["meta"]["inputs"]["code"]
    finally:
        sys.modules.pop("plug23", None)


def test_a_model_that_samples_is_reused_only_with_the_same_seed_and_batch_size(tmp_path):
    models = [{"name": "sampling"}, {"name": "counting"}]
    first = run(tmp_path, models=models)
    Counting.scored.clear()
    assert run(tmp_path, models=models)["results"] == first["results"] and Counting.scored == []
    for change in ({"seed": 1}, {"batch_size": 5}):
        Counting.scored.clear()
        changed = run(tmp_path, models=models, **change)
        # the sampling model draws again (24 images); the deterministic one is reused
        assert sum(Counting.scored) == 24, change
        fresh = run(tmp_path, out=f"fresh-{list(change)[0]}", models=models, **change)
        assert plcc(changed) == plcc(fresh)


def test_images_copied_with_their_old_times_need_hash_images(tmp_path):
    """Size and modification time cannot see bytes swapped by a tool that keeps times; --hash-images can."""
    root = tmp_path / "data" / "graded"
    make_graded_root(root, count=24)
    for path in root.glob("*.png"):  # BMP: every image of one size has the same file size
        Image.open(path).save(path.with_suffix(".bmp"))
        path.unlink()
    labels = root / "labels.csv"
    labels.write_text(labels.read_text().replace(".png", ".bmp"))
    run(tmp_path)
    by_stat = run(tmp_path, out="hashed", hash_images=True)
    a, b = root / "img02.bmp", root / "img21.bmp"
    times = {p: os.stat(p) for p in (a, b)}
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    for path, info in times.items():
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    Counting.scored.clear()
    run(tmp_path)
    assert Counting.scored == []  # documented limit: same sizes and times look unchanged
    hashed = run(tmp_path, out="hashed", hash_images=True)
    assert sum(Counting.scored) == 24 and plcc(hashed) < plcc(by_stat)


def test_a_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    reads = []
    real = content.sha256_of_file
    monkeypatch.setattr(content, "sha256_of_file", lambda path: reads.append(Path(path).name) or real(path))
    monkeypatch.setattr(content, "SETTLED_NS", 0)  # the file below is not "just written" for this test
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x00" * 1000)
    cache_file = tmp_path / "cache" / "hashes.sqlite3"
    first = content.HashCache(cache_file).sha256(weights)
    assert first == __import__("hashlib").sha256(b"\x00" * 1000).hexdigest()
    assert content.HashCache(cache_file).sha256(weights) == first  # another process: from the cache file
    assert reads == ["model.bin"]
    weights.write_bytes(b"\x01" * 1000)  # same size; the change time moves even if the modification time is reset
    assert content.HashCache(cache_file).sha256(weights) != first and reads == ["model.bin"] * 2


def test_a_file_changed_moments_ago_is_not_kept_in_the_cache(tmp_path, monkeypatch):
    reads = []
    real = content.sha256_of_file
    monkeypatch.setattr(content, "sha256_of_file", lambda path: reads.append(path) or real(path))
    monkeypatch.setattr(content, "SETTLED_NS", 10**18)  # every file counts as just written
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"abc")
    cache = content.HashCache(tmp_path / "hashes.sqlite3")
    cache.sha256(weights)
    cache.sha256(weights)
    assert len(reads) == 2  # not trusted while it may still change within the clock's resolution


def test_the_cache_is_optional(tmp_path):
    unusable = tmp_path / "a-file"
    unusable.write_text("")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"abc")
    assert content.HashCache(unusable / "hashes.sqlite3").sha256(weights) == content.sha256_of_file(weights)


def test_code_installed_from_an_index_is_named_by_version_and_local_code_by_its_files():
    import tabulate

    released = type("Table", (tabulate.TableFormat,), {"__module__": "tabulate"})
    assert content.code_identity(released) == {"tabulate": f"tabulate {tabulate.__version__}"}
    identity = content.code_identity(GradedSet)  # tests/ belongs to no distribution
    assert list(identity) == ["tests"] and identity["tests"].startswith("sha256 ")


# -- item 9 and the end-to-end check -----------------------------------------------------------------------------

#: what differs between two runs of the same work: when and how long
TIMES = ("created", "seconds", "images_scored", "end_to_end_images_per_second", "scoring_peak_memory_mib",
         "memory_method")


def apart_from_times(value):
    if isinstance(value, dict):
        return {k: apart_from_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [apart_from_times(v) for v in value]
    return value


def test_resumed_changed_and_fresh_runs(tmp_path):
    """The resumed run equals the original apart from times; the run whose inputs changed in place equals a fresh
    run on the new inputs."""
    weights = tmp_path / "weights.txt"
    weights.write_text("1.0")
    models = [{"name": "weighted", "options": {"weights": str(weights)}},
              {"name": "counting", "options": {"offset": 2.0}}, {"name": "darkness"}]
    original = run(tmp_path, models=models)
    assert original["models"][1]["config"] == {"offset": 2.0, "device": "cpu", "dtype": "float32"}
    # a resumed run: one pair's predictions were lost with the results
    (tmp_path / "out" / "predictions" / "darkness" / "graded-all.csv").unlink()
    (tmp_path / "out" / "results.json").unlink()
    Counting.scored.clear()
    resumed = run(tmp_path, models=models)
    assert Counting.scored == []  # counting and weighted were reused, not rebuilt
    assert apart_from_times(resumed) == apart_from_times(original)  # today: "config": null for both
    # inputs changed in place: an image and the checkpoint
    invert_image(tmp_path / "data" / "graded" / "img07.png")
    weights.write_text("0.5")
    changed = run(tmp_path, models=models)
    fresh = run(tmp_path, out="fresh", models=models)
    assert apart_from_times(changed) == apart_from_times(fresh)
    assert apart_from_times(changed)["results"] != apart_from_times(original)["results"]


# -- item 4: merged parts must have read the same data ------------------------------------------------------------


def test_merged_parts_must_have_read_the_same_data(tmp_path):
    make_graded_root(tmp_path / "data" / "graded", count=24)
    shutil.copytree(tmp_path / "data", tmp_path / "other", copy_function=shutil.copy2)
    invert_image(tmp_path / "other" / "graded" / "img05.png")  # same names, count and split: other pixels
    models = [{"name": "counting"}, {"name": "darkness"}]
    registry = registry_with(Counting, Darkness)
    suite = write_suite(tmp_path, models=models)
    for part, data in ((0, "data"), (1, "other")):
        run_suite(suite, tmp_path / f"part{part}", data_root=str(tmp_path / data), pairs=(part, 2),
                  registry=registry, progress=False)
    with pytest.raises(MergeError, match=r"different image files .*part0.*part1|different image files"):
        merge_runs([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged")
    # the same data read from the same folder merges
    run_suite(suite, tmp_path / "part1b", data_root=str(tmp_path / "data"), pairs=(1, 2), registry=registry,
              progress=False)
    merged = merge_runs([tmp_path / "part0", tmp_path / "part1b"], tmp_path / "merged")
    assert len(merged["results"]) == 2


def test_score_output_never_mixes_scores_of_a_checkpoint_replaced_in_place(tmp_path, monkeypatch, capsys):
    from iqabench.cli import main

    monkeypatch.setattr("iqabench.registry.discovery._DEFAULT", registry_with(Weighted))
    make_graded_root(tmp_path / "images", count=4)
    weights = tmp_path / "weights.txt"
    weights.write_text("1.0")
    command = ["score", "weighted", str(tmp_path / "images"), "-o", f"weights={weights}", "--output",
               str(tmp_path / "scores.csv")]
    assert main(command) == 0
    before = (tmp_path / "scores.csv").read_text()
    weights.write_text("-1.0")
    assert main(command) == 2  # today: 0, "4 images were already there", the old checkpoint's scores kept
    assert "other settings" in capsys.readouterr().err and (tmp_path / "scores.csv").read_text() == before
