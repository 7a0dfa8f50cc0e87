"""VisualQuality-R1: Qwen2.5-VL-7B tuned with GRPO and a ranking reward.

Apache-2.0, TianheWu/VisualQuality-R1. One user turn (image, then question),
no system prompt, images numbered (``add_vision_id=True``); the question ends
with a thinking suffix (reason in ``<think>``, then one score in ``<answer>``)
or, with ``thinking=False``, a suffix that asks for the answer only.

Defaults: greedy decoding; ``-o decoding=visualquality-r1`` is the README's
transformers sampling (top_k 50, top_p 1, temperature 1), whose values are
also the sampling defaults here, and ``visualquality-r1-vllm`` its vLLM script
(temperature 0.1); 512 new tokens (the README's batch setting), Qwen2.5-VL's
pixel budget 3136..12,845,056 (the stock qwen-vl-utils cap its scripts use).
"""

from __future__ import annotations

from PIL import Image

from iqabench_plugins.mllm.generation import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from iqabench_plugins.mllm.parsing import ParsedAnswer, parse_visualquality
from iqabench_plugins.mllm.prompts import visualquality_messages
from iqabench_plugins.mllm.scorer import ReasoningScorer


class VisualQualityR1(ReasoningScorer):
    """VisualQuality-R1: the first number of the last ``<answer>``."""

    name = "visualquality-r1"
    trainer = "grpo"
    default_checkpoint = "TianheWu/VisualQuality-R1-7B"
    release_decoding = "visualquality-r1"
    chat_template_kwargs = {"add_vision_id": True}

    def __init__(
        self,
        *,
        checkpoint: str | None = "TianheWu/VisualQuality-R1-7B",
        subfolder: str | None = None,
        random_init: bool = False,
        thinking: bool = True,
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
        self.thinking = thinking
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
        return visualquality_messages(image, thinking=self.thinking)

    def parse(self, text: str) -> ParsedAnswer:
        return parse_visualquality(text)

    def runtime_config(self) -> dict:
        prompt = "visualquality-r1 " + ("thinking" if self.thinking else "non-thinking")
        return {**super().runtime_config(), "prompt": prompt, "parser": "last answer, first number"}
