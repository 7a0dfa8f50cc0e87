"""The base of reasoning scorers: prompt, generate, parse, one Score per image.

Q-Insight, RACT and VisualQuality-R1 differ only in their checkpoint, prompt,
parser and defaults; everything else (loading, the pixel budget, batched
generation, decoding presets, sampling and averaging, failure handling, the
recorded config) lives here once.

Decoding (:mod:`.decoding`): ``decoding`` names a preset (``greedy`` by
default, or the release's own, e.g. ``q-insight-demo``); ``do_sample``,
``temperature``, ``top_p``, ``top_k``, ``num_samples`` and ``max_new_tokens``
given explicitly override it. What ``generate`` really resolved is recorded in
``config()["decoding"]["effective"]``.

With ``num_samples`` > 1 the score is the mean of the ratings that parse; the
image fails only when none of its samples parses (the error quotes the first
sample's reason). Averaging what parsed keeps one malformed sample from
discarding N-1 good ones.

Ratings are read as the official parsers read them, so a rating outside the
prompt's [1, 5] (a model that writes 5.2) is a score, not a failure; it is
counted (:meth:`ReasoningScorer.take_counts`) so that results can say how
often it happened.

For the efficiency study, ``random_init`` builds the released Qwen2.5-VL-7B
architecture with random weights (no checkpoint, no hub) and ``min_new_tokens``
fixes the generated length: time and memory then match the real model's, while
its scores are meaningless (mostly unparseable answers, counted as failures).
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from statistics import fmean
from typing import Any, ClassVar

from PIL import Image

from iqabench.api import IQABenchError, Model, ModelTraits, Score
from iqabench_plugins.mllm.decoding import resolve_decoding
from iqabench_plugins.mllm.generation import (
    CheckpointSource,
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

    score_range = (1.0, 5.0)
    #: an efficiency study fixes the generated length by setting both new-token options
    traits = ModelTraits(preprocessing="resize", generative=True,
                         new_tokens_options=("max_new_tokens", "min_new_tokens"))
    #: hub id used when ``checkpoint`` is not given (None: the option is required)
    default_checkpoint: ClassVar[str | None] = None
    #: subfolder of the default hub checkpoint that holds the weights
    default_subfolder: ClassVar[str | None] = None
    #: extra arguments of ``apply_chat_template`` (VisualQuality-R1 numbers its images)
    chat_template_kwargs: ClassVar[dict[str, Any]] = {}
    #: the decoding preset of the model's release: sampling values (and max_new_tokens) when a preset leaves them open
    release_decoding: ClassVar[str]

    @classmethod
    def released_parameters(cls) -> int:
        """Qwen2.5-VL-7B, the architecture of every release these scorers load."""
        return released_parameters()

    @property
    def generated_tokens(self) -> int:
        return self.generator.generated_tokens

    def __init__(
        self,
        *,
        checkpoint: str | None,
        subfolder: str | None,
        random_init: bool,
        decoding: str,
        max_new_tokens: int | None,
        min_new_tokens: int | None,
        do_sample: bool | None,
        temperature: float | None,
        top_p: float | None,
        top_k: int | None,
        num_samples: int | None,
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
        self.checkpoint = checkpoint
        self.subfolder = subfolder
        self.random_init = random_init
        self.decoding = decoding
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.num_samples = num_samples
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.backend = backend
        self.attn_implementation = attn_implementation
        if checkpoint is None and not random_init:
            raise IQABenchError(
                f"model {self.name!r} needs a checkpoint: pass -o checkpoint=DIR (a folder written by "
                f"`iqabench train {self.trainer}` or save_pretrained), or -o checkpoint=tiny-random for a smoke "
                "test, or -o random_init=true to time the architecture."
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
        #: the decoding that runs: the preset with the explicit options on top
        self.resolved_decoding = resolve_decoding(
            decoding,
            sampling_defaults=self.release_decoding,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            num_samples=num_samples,
        )
        #: what parsing saw since the last :meth:`take_counts`
        self.counts: Counter[str] = Counter()
        self.tensor_parallel_size = tensor_parallel_size
        self.gpu_memory_utilization = gpu_memory_utilization
        self.torch_dtype = resolve_dtype(dtype, device)
        folder = self.default_subfolder if subfolder is None and checkpoint == self.default_checkpoint else subfolder
        self.source = CheckpointSource.resolve(checkpoint, folder, random_init=random_init)
        self.traits = replace(self.traits, random_weights=self.source.random_weights)
        if backend == "vllm":
            self.model = None
            self.processor = load_processor(self.source, min_pixels=min_pixels, max_pixels=max_pixels)
            self.generator = VllmGenerator(
                self.source,
                self.processor,
                self.resolved_decoding,
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
                self.model, self.processor, self.resolved_decoding, chat_template_kwargs=self.chat_template_kwargs
            )

    @abstractmethod
    def messages(self, image: Image.Image) -> list[dict]:
        """The chat conversation that asks for this image's rating."""

    @abstractmethod
    def parse(self, text: str) -> ParsedAnswer:
        """Read the rating out of one completion."""

    def preprocessor(self) -> FitForVisionTower:
        return FitForVisionTower(min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def score_batch(self, items: Sequence[Image.Image]) -> list[Score]:
        completions = self.generator.generate([self.messages(image) for image in items], items)
        return [self.score_from(samples) for samples in completions]

    def score_from(self, samples: Sequence[str]) -> Score:
        """One image's Score from its sampled completions (one when greedy); counts what parsing saw."""
        parsed = [self.parse(text) for text in samples]
        good = [p for p in parsed if p.ok]
        outside = [p for p in good if p.outside(self.score_range)]
        self.counts.update(
            images=1,
            samples=len(parsed),
            unparseable_samples=len(parsed) - len(good),
            out_of_range_samples=len(outside),
            out_of_range_images=1 if outside else 0,
        )
        if not good:
            reason = parsed[0].error
            if len(parsed) > 1:
                reason = f"{reason} (none of {len(parsed)} samples parsed)"
            return Score.failure(f"unparseable answer: {reason}", text=samples[0])
        return Score.ok(fmean(p.score for p in good), text=good[0].reasoning)

    def take_counts(self) -> dict[str, int]:
        """What parsing saw since the previous call, then start again from zero.

        ``images`` and ``samples`` scored, ``unparseable_samples``,
        ``out_of_range_samples`` (ratings accepted outside :attr:`score_range`,
        as the official parsers accept them) and ``out_of_range_images``
        (images whose score includes such a rating). A runner calls it before
        and after a test set to report that test set's counts.
        """
        counts = {key: int(self.counts[key]) for key in
                  ("images", "samples", "unparseable_samples", "out_of_range_samples", "out_of_range_images")}
        self.counts.clear()
        return counts

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
            "decoding": {
                **self.resolved_decoding.to_dict(),
                "effective": self.generator.effective,
                "ignored_checkpoint_generation_config": self.generator.checkpoint_decoding,
            },
        }
