"""A finished run whose leaderboard has every analysis: distortion types, a reasoning model, an unscored image.

Shared by the leaderboard analysis tests and the browser test of ``leaderboard.html``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from iqabench import Dataset, Model, ModelTraits, Score
from iqabench.contracts.dataset import build_index
from iqabench.run.runner import run_suite
from tests.helpers import Brightness, brightness, registry_with, write_graded_images

TYPES = ("blur", "noise", "jpeg")
COUNT = 24


class TypedSet(Dataset):
    """Brightness-graded images, each labelled with a distortion type and level, all in the test split."""

    name = "typed"
    title = "Typed"
    default_dir = "typed"
    expected_files = ("labels.csv",)

    def load(self):
        rows = []
        for i, line in enumerate((self.root / "labels.csv").read_text().splitlines()):
            name, value = line.split(",")
            rows.append({"image": name, "mos_raw": float(value), "split": "test",
                         "distortion": {"type": TYPES[i % 3], "level": 1 + i // 3 % 5}})
        return build_index(self.name, self.root, rows, label_files=["labels.csv"], nominal_range=(1, 5),
                           direction="higher_better", split_source="all test", official_count=None)


class Wobbly(Model):
    """Brightness with a fixed zig-zag added: right on the whole, wrong on some images."""

    name = "wobbly"
    score_range = (0.0, 300.0)

    def preprocessor(self):
        return brightness

    def score_batch(self, items):
        return [Score.ok(v + (37.0 if int(v) % 3 == 0 else -23.0)) for v in items]


class Reasoner(Model):
    """Writes a short reasoning per image, as an MLLM does; fails on the darkest image."""

    name = "reasoner"
    score_range = (0.0, 255.0)
    traits = ModelTraits(generative=True)

    def preprocessor(self):
        return brightness

    def score_batch(self, items):
        return [Score.failure("unparseable answer", text="...") if v < 25 else
                Score.ok(255.0 - abs(v - 128.0), text=f"The image looks {'bright' if v > 128 else 'dark'}.\nScore.")
                for v in items]


def make_analysis_run(root: Path) -> Path:
    """Run three models on the typed set under ``root``; return the output folder."""
    data = root / "data" / "typed"
    rows = write_graded_images(data, COUNT)
    (data / "labels.csv").write_text("".join(f"{name},{label}\n" for name, label in rows))
    suite = {
        "name": "analyses", "protocol": "single_domain", "batch_size": 4, "num_workers": 0, "bootstrap": 200,
        "test": [{"dataset": "typed"}],
        "models": [{"name": "brightness", "label": "Bright"}, {"name": "wobbly", "label": "Wobbly <b>"},
                   {"name": "reasoner", "label": "Reasoner"}],
        "efficiency": {"warmup": 0, "repeats": 1},
    }
    (root / "suite.yaml").write_text(yaml.safe_dump(suite))
    run_suite(root / "suite.yaml", root / "out", data_root=str(root / "data"),
              registry=registry_with(Brightness, Wobbly, Reasoner, datasets=(TypedSet,)), progress=False)
    return root / "out"
