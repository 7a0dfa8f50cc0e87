"""Generation speed of the q-insight scorer: images/s and tokens/s at batch 1 and 16.

    pytest benchmarks/bench_mllm.py --benchmark-enable          # tiny random model, CPU
    IQABENCH_BENCH_REAL=1 pytest benchmarks/bench_mllm.py --benchmark-enable -k real   # 7B-sized, GPU

The tiny model is the 0.3 M-parameter random Qwen2.5-VL of ``tiny.py``: its
numbers measure the harness (prompting, processor, batching, parsing) and not
a real checkpoint. The real-size harness builds Qwen2.5-VL-7B's architecture
with RANDOM weights directly on the GPU (no download), so its timings are
realistic for the 7B model at the given pixel budget and generation length,
while its outputs (and scores) are meaningless: TIMING ONLY. A random model
never writes its end token, so every image generates exactly
``max_new_tokens`` tokens, an upper bound for trained models that stop early.
Figures go to ``benchmark.extra_info``; they are measured on every call, so
they are also printed with ``--benchmark-disable``.
"""

from __future__ import annotations

import os
import time

import pytest
import torch
from PIL import Image

import iqabench  # noqa: F401  (installs the torchvision shim first)
from iqabench_plugins.mllm.q_insight import QInsight

TINY_NEW_TOKENS = 16
REAL = os.environ.get("IQABENCH_BENCH_REAL") == "1"


def _images(n: int, size: tuple[int, int]) -> list[Image.Image]:
    return [Image.new("RGB", size, (17 * i % 255, 90, 160)) for i in range(n)]


def _measure(benchmark, model: QInsight, batch: list[Image.Image], rounds: int, **labels) -> None:
    elapsed: list[float] = []
    tokens: list[int] = []

    def score_once():
        before = model.generator.generated_tokens
        start = time.perf_counter()
        model.score(batch)
        model.synchronize()
        elapsed.append(time.perf_counter() - start)
        tokens.append(model.generator.generated_tokens - before)

    benchmark.pedantic(score_once, rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    elapsed, tokens = elapsed[-rounds:], tokens[-rounds:]  # drop the warm-up call
    mean_s = sum(elapsed) / len(elapsed)
    info = {
        "batch_size": len(batch),
        "images_per_s": round(len(batch) / mean_s, 3),
        "tokens_per_s": round(sum(tokens) / sum(elapsed), 1),
        "seconds_per_batch": round(mean_s, 4),
        "max_new_tokens": model.resolved_decoding.max_new_tokens,
        "max_pixels": model.max_pixels,
        "image_size": "x".join(map(str, batch[0].size)),
        "device": model.device,
        "dtype": model.config()["dtype"],
        "torch_threads": torch.get_num_threads(),
        **labels,
    }
    benchmark.extra_info.update(info)
    print(f"\nq-insight generation: {info}")


@pytest.fixture(scope="module")
def tiny_model() -> QInsight:
    return QInsight(checkpoint="tiny-random", max_new_tokens=TINY_NEW_TOKENS, device="cpu", dtype="float32")


@pytest.mark.parametrize("batch_size", [1, 16])
def test_q_insight_tiny_cpu(benchmark, tiny_model, batch_size):
    batch = _images(batch_size, (64, 48))
    _measure(benchmark, tiny_model, batch, rounds=3, weights="tiny-random (random weights; harness overhead only)")
    assert tiny_model.generator.generated_tokens > 0


def _real_size_q_insight(max_new_tokens: int) -> QInsight:
    """q-insight on a Qwen2.5-VL-7B-shaped model with random bf16 weights built on the GPU."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    model = QInsight(checkpoint="tiny-random", max_new_tokens=max_new_tokens, device="cuda", dtype="bfloat16")
    token_id = model.processor.tokenizer.convert_tokens_to_ids
    # Qwen2.5-VL-7B-Instruct's published architecture
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            eos_token_id=token_id("<|im_end|>"), pad_token_id=token_id("<|endoftext|>"), bos_token_id=None,
        ),
        vision_config=dict(
            depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
        ),
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            net = Qwen2_5_VLForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(default)
    net.generation_config.eos_token_id = token_id("<|im_end|>")
    net.generation_config.pad_token_id = token_id("<|endoftext|>")
    model.model = net
    model.generator.model = net
    # random ids beyond the byte-level tokenizer's vocabulary cannot be decoded; timing needs no text
    model.generator.decode = lambda new_tokens: [""] * new_tokens.shape[0]
    return model


@pytest.mark.skipif(not REAL, reason="set IQABENCH_BENCH_REAL=1 on a CUDA machine for the 7B-sized timing harness")
@pytest.mark.parametrize("batch_size", [1, 16])
def test_q_insight_real_size_gpu_random_weights(benchmark, batch_size):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    max_new_tokens = int(os.environ.get("IQABENCH_BENCH_MAX_NEW_TOKENS", "256"))
    model = _real_size_q_insight(max_new_tokens)
    torch.cuda.reset_peak_memory_stats()
    batch = _images(batch_size, (1024, 768))  # KonIQ-10k's size; ~1000 visual tokens at the default max_pixels
    _measure(
        benchmark,
        model,
        batch,
        rounds=2,
        weights="Qwen2.5-VL-7B architecture, RANDOM weights: timing only",
    )
    benchmark.extra_info["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
