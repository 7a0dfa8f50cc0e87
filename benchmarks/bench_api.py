"""Python API throughput: RALI on the offline encoder pair scoring files against scoring tensors.

``model(paths)`` decodes JPEGs and runs the PIL preprocessing (resize, crop,
normalise) before the encoder; ``model(pixels)`` takes a float batch already in
memory through the tensor path (the same steps in torch); the loss case adds the
backward pass to the pixels. Each records images/s in ``extra_info``. Random
weights (``random_init``): the architecture, not the scores, sets the time.

Run: ``pytest benchmarks/bench_api.py --benchmark-enable``
"""

import numpy as np
import pytest
import torch
from PIL import Image

import iqabench

COUNT, BATCH, SIZE = 16, 8, (512, 384)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """``COUNT`` photo-sized JPEGs, and the same pixels as one float tensor in [0, 1]."""
    folder = tmp_path_factory.mktemp("api-bench")
    rng = np.random.default_rng(0)
    paths, arrays = [], []
    for i in range(COUNT):
        smooth = np.kron(rng.integers(0, 256, (SIZE[1] // 16, SIZE[0] // 16, 3)), np.ones((16, 16, 1)))
        array = smooth.astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i}.jpg", quality=90)
        paths.append(str(folder / f"{i}.jpg"))
        arrays.append(np.asarray(Image.open(paths[-1]).convert("RGB")))
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return paths, pixels


@pytest.fixture(scope="module")
def rali():
    return iqabench.create_model("rali", random_init=True, encoder="efficientnet-minilm")


def _images_per_second(benchmark):
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = COUNT / benchmark.stats.stats.median
    benchmark.extra_info["threads"] = torch.get_num_threads()


def test_api_files(benchmark, rali, images):
    paths, _ = images
    benchmark.pedantic(rali, args=(paths,), kwargs={"batch_size": BATCH}, rounds=9, warmup_rounds=1)
    _images_per_second(benchmark)


def test_api_tensors(benchmark, rali, images):
    _, pixels = images
    benchmark.pedantic(rali, args=(pixels,), kwargs={"batch_size": BATCH}, rounds=9, warmup_rounds=1)
    _images_per_second(benchmark)


def test_api_tensors_as_loss_with_backward(benchmark, images):
    _, pixels = images
    loss = iqabench.create_model("rali", as_loss=True, random_init=True, encoder="efficientnet-minilm")

    def step():
        for chunk in pixels.split(BATCH):
            chunk = chunk.clone().requires_grad_(True)
            loss(chunk).backward()

    benchmark.pedantic(step, rounds=9, warmup_rounds=1)
    _images_per_second(benchmark)
