"""Speed of the dataset plugins: indexing a KonIQ-sized dataset, and decoding images for a model.

Run: ``python -m pytest benchmarks/bench_datasets.py --benchmark-enable``.
The decode benchmark reports images per second in ``extra_info``; it uses a
torch DataLoader with worker processes, the way the runner keeps a GPU fed.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from iqabench.scoring.images import load_image
from iqabench_plugins.datasets import KonIQ10k

KONIQ_COUNT = 10073
DECODE_IMAGES = 96
WIDTH, HEIGHT = 512, 384


@pytest.fixture(scope="module")
def koniq_layout(tmp_path_factory) -> Path:
    """The official KonIQ layout with 10,073 records; image files are empty (indexing never decodes)."""
    root = tmp_path_factory.mktemp("koniq10k")
    (root / "1024x768").mkdir()
    rng = np.random.default_rng(0)
    splits = ["training"] * 7058 + ["validation"] * 1000 + ["test"] * 2015
    with open(root / "koniq10k_distributions_sets.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "set"])
        for i, split in enumerate(splits):
            name = f"{1000000 + i}.jpg"
            writer.writerow([name, 1, 2, 3, 4, 5, 15, round(float(rng.uniform(3.91, 88.39)), 2), 0.5, split])
            (root / "1024x768" / name).touch()
    return root


def test_index_koniq_10k_records(benchmark, koniq_layout):
    index = benchmark(lambda: KonIQ10k(koniq_layout).load())
    assert len(index.records) == KONIQ_COUNT
    assert index.provenance.splits == {"train": 7058, "val": 1000, "test": 2015}


class DecodedImages(Dataset):
    """Decodes one image and turns it into a CHW float tensor, in a worker process."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = load_image(self.paths[i])
        if image.size != (WIDTH, HEIGHT):
            image = image.resize((WIDTH, HEIGHT), Image.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    paths = []
    for i in range(DECODE_IMAGES):
        image = Image.fromarray(np.roll(base, i, axis=1)).resize((WIDTH, HEIGHT), Image.BICUBIC)
        path = folder / f"{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def test_decode_512x384_throughput(benchmark, jpegs):
    workers = min(4, os.cpu_count() or 1)
    loader = DataLoader(
        DecodedImages(jpegs), batch_size=16, num_workers=workers, persistent_workers=True,
        pin_memory=torch.cuda.is_available(),
    )
    seconds: list[float] = []

    def decode_all() -> int:
        start = time.perf_counter()
        seen = sum(batch.shape[0] for batch in loader)
        seconds.append(time.perf_counter() - start)
        return seen

    decode_all()  # start the workers outside the measurement
    seconds.clear()
    seen = benchmark.pedantic(decode_all, rounds=3, iterations=1)
    benchmark.extra_info["images_per_second"] = round(len(jpegs) / min(seconds), 1)
    benchmark.extra_info["workers"] = workers
    assert seen == len(jpegs)
