"""Speed of the efficiency study's building blocks: JPEG decode + RALI preparation, RALI scoring, Q-Insight generation.

Tiny models keep the CPU default fast; on a GPU machine run the real sizes
through ``iqabench bench --device cuda --dtype bfloat16`` (docs/efficiency.md),
which these benchmarks do not replace. ``extra_info`` records images/s.

Run: ``HF_HUB_OFFLINE=1 python -m pytest benchmarks/bench_efficiency.py --benchmark-enable``
(CI: ``--benchmark-disable`` runs each once, as a smoke test).
"""

import pytest
import torch

import iqabench  # noqa: F401  (installs the torchvision shim before plugins import)
from iqabench.efficiency.bench import BenchModel, BenchSettings, make_jpegs, measure_model
from iqabench.scoring.images import load_image
from iqabench_plugins.mllm.q_insight import QInsight
from iqabench_plugins.rali.model import RALI
from tests.helpers import save_tiny_clip

BATCH = 4


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    return make_jpegs(tmp_path_factory.mktemp("jpegs"), BATCH, (512, 384))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return str(save_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


def test_decode_and_prepare_for_rali(benchmark, jpegs):
    """The per-image CPU cost that decode workers must hide: PIL JPEG decode + CLIP resize/crop/normalise."""
    from transformers import CLIPImageProcessor

    from iqabench_plugins.rali.encoders import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, HFImageTransform

    # what RALI's ViT-L/14-336 runs in its workers, without building the 300M-parameter tower
    prepare = HFImageTransform(CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                                  image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD)))
    result = benchmark(lambda: [prepare(load_image(path)) for path in jpegs])
    assert len(result) == BATCH and tuple(result[0].shape) == (3, 336, 336)
    benchmark.extra_info["images"] = BATCH


def test_rali_score_batch_tiny_clip(benchmark, tiny_clip, jpegs):
    model = RALI(random_init=True, backbone=tiny_clip)
    prepare = model.preprocessor()
    items = [prepare(load_image(path)) for path in jpegs]
    scores = benchmark(model.score_batch, items)
    assert len(scores) == BATCH and not any(s.failed for s in scores)


def test_q_insight_generate_tiny(benchmark, jpegs):
    model = QInsight(checkpoint="tiny-random", max_new_tokens=8, dtype="float32")
    images = [load_image(path) for path in jpegs]
    scores = benchmark.pedantic(model.score_batch, args=(images,), rounds=2, warmup_rounds=0)
    assert len(scores) == BATCH  # random weights: the answers do not parse, every image is a recorded failure


def test_bench_measure_model_tiny(benchmark, tiny_clip, jpegs):
    """One model through the whole measurement (model time, stages, end-to-end) at one batch size."""
    spec = BenchModel(name="rali", options={"random_init": True, "backbone": tiny_clip})  # RALI declares its stages
    settings = BenchSettings(batch_sizes=(BATCH,), device="cpu", dtype="float32", images=BATCH, warmup=0,
                             repeats=1, num_workers=0)
    record = benchmark.pedantic(measure_model, args=(spec, settings, jpegs), rounds=1, warmup_rounds=0)
    (row,) = record["rows"]
    assert row["error"] is None and row["images_per_second"] > 0
    assert set(row["stage_ms_per_image"]) == {"encoder", "head"}
    benchmark.extra_info["images_per_second"] = row["images_per_second"]
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()
