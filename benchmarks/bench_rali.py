"""RALI scoring speed on CPU: one encoder forward plus one small matmul.

Random weights (``random_init=True``) are enough for timing. Each benchmark
records images/s and the share of time spent outside the encoder (the fused
PCA + prototype head) in ``extra_info``. The ViT-L/14-336 case is marked slow:
skip it with ``-m "not slow"``.

Run: ``HF_HUB_OFFLINE=1 python -m pytest benchmarks/bench_rali.py --benchmark-enable``
"""

import time

import pytest
import torch

from iqabench_plugins.rali.model import RALI
from tests.helpers import save_tiny_clip

BATCH = 8


def _share_outside_encoder(model, pixels, repeats):
    """Median encoder time and median head time over ``repeats`` runs."""
    encoder_times, head_times = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            features = model.features(pixels)
            middle = time.perf_counter()
            model.fused(features.float())
            end = time.perf_counter()
            encoder_times.append(middle - start)
            head_times.append(end - middle)
    encoder_times.sort(), head_times.sort()
    encoder, head = encoder_times[len(encoder_times) // 2], head_times[len(head_times) // 2]
    return head / (encoder + head)


def _run(benchmark, model, batch, rounds):
    pixels = torch.stack([model.preprocessor()(_image()) for _ in range(batch)])
    benchmark.pedantic(model.score_batch, args=(list(pixels),), rounds=rounds, warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median
    benchmark.extra_info["share_outside_encoder"] = _share_outside_encoder(model, pixels, max(rounds, 3))
    benchmark.extra_info["threads"] = torch.get_num_threads()


def _image():
    from PIL import Image

    return Image.new("RGB", (512, 384), (120, 90, 60))


def test_rali_tiny_cpu(benchmark, tmp_path):
    model = RALI(random_init=True, backbone=str(save_tiny_clip(tmp_path)), pca_dim=8, num_prototypes=250)
    _run(benchmark, model, BATCH, rounds=20)


@pytest.mark.slow
def test_rali_vit_l14_336_cpu(benchmark):
    model = RALI(random_init=True)  # CLIP ViT-L/14-336 architecture, PCA 768 -> 512, K = 250
    _run(benchmark, model, batch=2, rounds=2)
