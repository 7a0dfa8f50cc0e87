"""The base of reasoning scorers: prompt, generate, parse, one Score per image.

Q-Insight, RACT and VisualQuality-R1 differ only in their checkpoint, prompt,
parser and defaults; everything else (loading, the pixel budget, batched
generation, sampling and averaging, failure handling, the recorded config)
lives here once.

With ``num_samples`` > 1 the score is the mean of the ratings that parse; the
image fails only when none of its samples parses (the error quotes the first
sample's reason). Averaging what parsed keeps one malformed sample from
discarding N-1 good ones. Partial failures are therefore not counted, which is
one more reason why benchmarks default to greedy decoding with one sample.

For the efficiency study, ``random_init`` builds the released Qwen2.5-VL-7B
architecture with random weights (no checkpoint, no hub) and ``min_new_tokens``
fixes the generated length: time and memory then match the real model's, while
its scores are meaningless (mostly unparseable answers, counted as failures).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from statistics import fmean
from typing import Any, ClassVar

from PIL import Image

from iqabench.errors import IQABenchError
from iqabench.model import Model, Score
from iqabench_plugins.mllm.generation import (
    CheckpointSource,
    Decoding,
    FitForVisionTower,
    TransformersGenerator,
    VllmGenerator,
    load_processor,
    load_vlm,
    resolve_dtype,
)
from iqabench_plugins.mllm.parsing import ParsedAnswer
from iqabench_plugins.mllm.released_configs import released_parameters

BACKENDS = ("transformers", "vllm")


class ReasoningScorer(Model):
    """A Qwen2.5-VL-family model that reasons in text and writes a rating."""

    generative = True
    score_range = (1.0, 5.0)
    preprocessing = "resize"
    #: hub id used when ``checkpoint`` is not given (None: the option is required)
    default_checkpoint: ClassVar[str | None] = None
    #: subfolder of the default hub checkpoint that holds the weights
    default_subfolder: ClassVar[str | None] = None
    #: extra arguments of ``apply_chat_template`` (VisualQuality-R1 numbers its images)
    chat_template_kwargs: ClassVar[dict[str, Any]] = {}
    #: an efficiency study fixes the generated length by setting both
    new_tokens_options = ("max_new_tokens", "min_new_tokens")

    @classmethod
    def released_parameters(cls) -> int:
        """Qwen2.5-VL-7B, the architecture of every release these scorers load."""
        return released_parameters()

    @property
    def random_weights(self) -> bool:
        return self.source.random_weights

    @property
    def generated_tokens(self) -> int:
        return self.generator.generated_tokens

    def __init__(
        self,
        *,
        checkpoint: str | None,
        subfolder: str | None,
        random_init: bool,
        max_new_tokens: int,
        min_new_tokens: int | None,
        do_sample: bool,
        temperature: float,
        top_p: float,
        top_k: int,
        num_samples: int,
        max_pixels: int,
        min_pixels: int,
        backend: str,
        attn_implementation: str,
        device: str,
        dtype: str,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        if checkpoint is None and not random_init:
            raise IQABenchError(
                f"model {self.name!r} needs a checkpoint: pass -o checkpoint=DIR (a folder written by "
                f"`iqabench train {self.trainer}` or save_pretrained), or -o checkpoint=tiny-random for a smoke test, or -o random_init=true to time the architecture."
            )
        if backend not in BACKENDS:
            raise IQABenchError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}.")
        if min_pixels > max_pixels:
            raise IQABenchError(f"min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels}).")
        if random_init and checkpoint not in (None, self.default_checkpoint):
            raise IQABenchError(
                f"random_init builds the released architecture with random weights and would ignore checkpoint="
                f"{checkpoint}; pass only one of them (-o random_init=false to load the checkpoint)."
            )
        if (tensor_parallel_size != 1 or gpu_memory_utilization != 0.9) and backend != "vllm":
            raise IQABenchError("tensor_parallel_size and gpu_memory_utilization are options of the vLLM engine; "
                                "add -o backend=vllm, or leave them out.")
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise IQABenchError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}.")
        if random_init and backend == "vllm":
            raise IQABenchError("random_init builds the model in transformers; use -o backend=transformers with it.")
        if subfolder is None and checkpoint == self.default_checkpoint:
            subfolder = self.default_subfolder
        self.checkpoint = checkpoint
        self.subfolder = subfolder
        self.random_init = random_init
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.num_samples = num_samples
        self.decoding = Decoding(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            num_samples=num_samples,
        )
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.backend = backend
        self.tensor_parallel_size = tensor_parallel_size
        self.gpu_memory_utilization = gpu_memory_utilization
        self.attn_implementation = attn_implementation
        self.torch_dtype = resolve_dtype(dtype, device)
        self.source = CheckpointSource.resolve(checkpoint, subfolder, random_init=random_init)
        if backend == "vllm":
            self.model = None
            self.processor = load_processor(self.source, min_pixels=min_pixels, max_pixels=max_pixels)
            self.generator = VllmGenerator(
                self.source,
                self.processor,
                self.decoding,
                dtype=self.torch_dtype,
                min_pixels=min_pixels,
                max_pixels=max_pixels,
                chat_template_kwargs=self.chat_template_kwargs,
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
            )
        else:
            self.model, self.processor = load_vlm(
                self.source,
                device=device,
                dtype=self.torch_dtype,
                attn_implementation=attn_implementation,
                min_pixels=min_pixels,
                max_pixels=max_pixels,
            )
            self.generator = TransformersGenerator(
                self.model, self.processor, self.decoding, chat_template_kwargs=self.chat_template_kwargs
            )

    @abstractmethod
    def messages(self, image: Image.Image) -> list[dict]:
        """The chat conversation that asks for this image's rating."""

    @abstractmethod
    def parse(self, text: str) -> ParsedAnswer:
        """Read the rating out of one completion."""

    def preprocessor(self) -> FitForVisionTower:
        return FitForVisionTower()

    def score_batch(self, items: Sequence[Image.Image]) -> list[Score]:
        completions = self.generator.generate([self.messages(image) for image in items], items)
        return [self.score_from(samples) for samples in completions]

    def score_from(self, samples: Sequence[str]) -> Score:
        """One image's Score from its sampled completions (one when greedy)."""
        parsed = [self.parse(text) for text in samples]
        good = [p for p in parsed if p.ok]
        if not good:
            reason = parsed[0].error
            if len(parsed) > 1:
                reason = f"{reason} (none of {len(parsed)} samples parsed)"
            return Score.failure(f"unparseable answer: {reason}", text=samples[0])
        return Score.ok(fmean(p.score for p in good), text=good[0].reasoning)

    def num_parameters(self) -> int:
        if self.model is None:
            return 0
        return sum(p.numel() for p in self.model.parameters())

    def input_resolution(self) -> str:
        return f"Qwen2.5-VL smart_resize to multiples of 28 within {self.min_pixels}..{self.max_pixels} pixels"

    def runtime_config(self) -> dict[str, Any]:
        return {
            "dtype": str(self.torch_dtype).replace("torch.", ""),
            **self.source.to_dict(),
            "decoding": self.decoding.to_dict(),
        }
