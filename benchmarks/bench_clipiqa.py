"""Speed of CLIP-IQA scoring and of one CoOp step, on the real RN50 architecture.

The weights are random (no download): compute and memory are those of OpenAI's
RN50, the scores are not. Run with
``python -m pytest benchmarks/bench_clipiqa.py --benchmark-enable``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import iqabench  # noqa: F401  (torchvision shim before open_clip)
from iqabench_plugins.clipiqa.models import ClipIQA, build_prompt_learner
from iqabench_plugins.clipiqa.trainer import fit_context


@pytest.fixture(scope="module")
def rn50() -> ClipIQA:
    return ClipIQA(model_name="RN50", pretrained=None)


@pytest.mark.parametrize("height, width", [(384, 512), (768, 1024)])
def test_score_rn50_full_resolution(benchmark, rn50, height, width):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    prepared = [rn50.preprocessor()(image)]
    scores = benchmark(rn50.score_batch, prepared)
    assert not scores[0].failed


def test_coop_step_rn50_text_tower(benchmark, rn50):
    """One optimiser step on cached image features: the text tower on two prompts, batch 128 (the release's)."""
    learner = build_prompt_learner(rn50.clip, "RN50", ["Good photo.", "Bad photo."], 16)
    features = F.normalize(torch.randn(1, 128, rn50.clip.text_projection.shape[1]), dim=-1)
    targets = torch.rand(128)

    def step() -> list[float]:
        return fit_context(
            learner, features, targets, logit_scale=100.0, iterations=1, batch_size=128, lr=0.002, momentum=0.0,
            weight_decay=0.0, lr_period=300000, min_lr=1e-7, generator=torch.Generator().manual_seed(0),
        )

    losses = benchmark(step)
    assert len(losses) == 1 and losses[0] >= 0.0
