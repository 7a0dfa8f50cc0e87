"""Q-Insight and RACT: Qwen2.5-VL-7B tuned with GRPO to reason, then rate in JSON.

Q-Insight (Apache-2.0, bytedance/Q-Insight) scores with the system prompt and
score question of its release, which the RACT paper keeps (Table A.4), and
answers ``<think>...</think><answer>{"rating": x}</answer>``. RACT checkpoints
come from the RACT trainer and share prompt and parser.

Defaults: greedy decoding (reproducible benchmarks); ``-o decoding=q-insight-demo``
is the authors' demo (temperature 1, top_p 0.95, top_k 50, one completion),
whose values are also the sampling defaults here; 1024 new tokens (the demo's
limit); Qwen2.5-VL's pixel budget 3136..12,845,056 (Q-Insight's training cap;
the 2026 repo vendors 320*28*28 = 250,880).
"""

from __future__ import annotations

from PIL import Image

from iqabench_plugins.mllm.generation import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from iqabench_plugins.mllm.parsing import ParsedAnswer, parse_q_insight
from iqabench_plugins.mllm.prompts import q_insight_messages
from iqabench_plugins.mllm.scorer import ReasoningScorer


class QInsight(ReasoningScorer):
    """Q-Insight score regression: reasoning in ``<think>``, JSON ``rating`` in ``<answer>``."""

    name = "q-insight"
    trainer = "grpo"
    default_checkpoint = "ByteDance/Q-Insight"
    default_subfolder = "score_degradation"
    release_decoding = "q-insight-demo"

    def __init__(
        self,
        *,
        checkpoint: str | None = "ByteDance/Q-Insight",
        subfolder: str | None = None,
        random_init: bool = False,
        decoding: str = "greedy",
        max_new_tokens: int | None = None,
        min_new_tokens: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        num_samples: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        backend: str = "transformers",
        attn_implementation: str = "sdpa",
        device: str = "cpu",
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
    ) -> None:
        super().__init__(
            checkpoint=checkpoint,
            subfolder=subfolder,
            random_init=random_init,
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            num_samples=num_samples,
            max_pixels=max_pixels,
            min_pixels=min_pixels,
            backend=backend,
            attn_implementation=attn_implementation,
            device=device,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
        )

    def messages(self, image: Image.Image) -> list[dict]:
        return q_insight_messages(image)

    def parse(self, text: str) -> ParsedAnswer:
        return parse_q_insight(text)

    def runtime_config(self) -> dict:
        return {**super().runtime_config(), "prompt": "q-insight score regression", "parser": "q-insight json rating"}


class Ract(QInsight):
    """A RACT checkpoint (Q-Insight family): same prompt and parser; the checkpoint is required."""

    name = "ract"
    trainer = "ract"
    default_checkpoint = None
    default_subfolder = None

    def __init__(self, *, checkpoint: str | None = None, **options) -> None:
        """Q-Insight's options (``iqabench list`` shows them); only ``checkpoint`` has no default."""
        super().__init__(checkpoint=checkpoint, **options)
