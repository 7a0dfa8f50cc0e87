"""`iqabench describe` end to end with the tiny random Qwen2.5-VL: one line per (image, seed), resumable."""

import json
import types

import pytest
from PIL import Image

from iqabench import hookimpl
from iqabench.cli import main
from iqabench.contracts.dataset import Dataset, build_index
from iqabench.reasoning.texts import read_texts
from iqabench.registry.discovery import default_registry
from iqabench_plugins.mllm.generation import TransformersGenerator

TINY = ["-o", "checkpoint=tiny-random", "-o", "max_new_tokens=4"]


@pytest.fixture
def two_images(tmp_path):
    paths = []
    for i, size in enumerate([(64, 48), (40, 40)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (60 * i, 100, 150)).save(path)
        paths.append(str(path))
    return paths


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_images_by_seed_and_resume(tmp_path, two_images, capsys):
    out = tmp_path / "texts.jsonl"
    argv = ["describe", "q-insight", *two_images, "--seeds", "0,1,2", "--out", str(out), "--batch-size", "2", *TINY]
    assert main(argv) == 0
    rows = lines(out)
    assert sorted((r["image"], r["seed"]) for r in rows) == sorted((p, s) for p in two_images for s in (0, 1, 2))
    # the random model writes no rating: every row is a recorded failure with the raw text, never a score
    assert all(r["score"] is None and r["error"].startswith("unparseable answer") for r in rows)
    assert all(r["model"] == "q-insight" and r["gt"] is None for r in rows)
    assert "wrote 6 texts (6 without a parsable score)" in capsys.readouterr().out

    assert main(argv) == 0  # resume: nothing left to do
    assert len(lines(out)) == 6
    assert "wrote 0 texts" in capsys.readouterr().out
    assert len(read_texts(out)) == 6  # the exact reader the RALI/RACT trainers use


def test_parsed_reasoning_and_score_are_written(tmp_path, two_images, monkeypatch):
    completion = '<think>Mild blur on the edges.</think><answer>{"rating": 3.25}</answer>'
    monkeypatch.setattr(TransformersGenerator, "decode", lambda self, new: [completion] * new.shape[0])
    out = tmp_path / "texts.jsonl"
    assert main(["describe", "q-insight", two_images[0], "--out", str(out), *TINY]) == 0
    [row] = lines(out)
    assert row["text"] == "Mild blur on the edges."
    assert row["score"] == pytest.approx(3.25) and row["error"] is None and row["seed"] == 0


class _TwoImageSet(Dataset):
    name = "tiny-describe-set"
    title = "Tiny"
    default_dir = "tiny"

    def load(self):
        rows = [
            {"image": "a.png", "mos_raw": 10.0, "split": "test"},
            {"image": "b.png", "mos_raw": 30.0, "split": "test"},
            {"image": "c.png", "mos_raw": 20.0, "split": "train"},
        ]
        return build_index(
            self.name, self.root, rows, label_files=[], nominal_range=None, direction="higher_better",
            split_source="test", official_count=None,
        )


def test_dataset_split_with_ground_truth(tmp_path, monkeypatch):
    root = tmp_path / "tiny"
    root.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (48, 48), (10, 200, 30)).save(root / name)
    plugin = types.SimpleNamespace(iqabench_datasets=hookimpl(lambda: [_TwoImageSet]))
    registry = default_registry()
    registry.register(plugin, name="tiny-describe-test")
    try:
        out = tmp_path / "texts.jsonl"
        argv = ["describe", "q-insight", "--dataset", "tiny-describe-set", "--split", "test", "--root", str(root)]
        assert main([*argv, "--out", str(out), *TINY]) == 0
    finally:
        registry.plugin_manager.unregister(plugin)
        registry._entries = None
    rows = {r["image"]: r for r in lines(out)}
    assert set(rows) == {"a.png", "b.png"}
    assert rows["a.png"]["gt"] == pytest.approx(1.0) and rows["b.png"]["gt"] == pytest.approx(5.0)  # min-max to [1, 5]
    assert rows["a.png"]["dataset"] == "tiny-describe-set"


def test_bad_arguments_are_plain_errors(tmp_path, two_images, capsys):
    out = str(tmp_path / "t.jsonl")
    assert main(["describe", "q-insight", "--out", out, *TINY]) == 2
    assert "either image files or --dataset" in capsys.readouterr().err
    assert main(["describe", "q-insight", two_images[0], "--seeds", "a,b", "--out", out, *TINY]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["describe", "q-align", two_images[0], "--out", out, "-o", "checkpoint=tiny-random"]) == 2
    assert "writes no text" in capsys.readouterr().err
