"""Loading a Qwen2.5-VL-family checkpoint and generating from it in batches.

Shared by every MLLM scorer and by the RL trainers: one loader that accepts a
Hugging Face hub id (with a subfolder, as ``ByteDance/Q-Insight`` needs), a
local folder, ``tiny-random`` (the tiny model of :mod:`.tiny`), or the
released 7B architecture with random weights (``random_init``, for timing),
and one batched generator with left padding.

Why the pieces are here:

* the pixel budget (``min_pixels``/``max_pixels``) decides how many visual
  tokens an image becomes, hence accuracy, latency and memory; it is fixed at
  load time and recorded;
* a CUDA out-of-memory error on a batch halves the batch and retries (and
  says so) instead of losing the run;
* images smaller than one 28-pixel vision patch are scaled up with a warning,
  because older processors reject them;
* decoding is applied without leaks from the checkpoint's
  ``generation_config.json`` and recorded as ``generate`` resolves it
  (:mod:`.decoding`);
* vLLM is an optional, faster backend, with tensor and data parallelism over
  GPUs; tests fake the ``vllm`` module.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from iqabench.api import CheckpointError, IQABenchError, inference_mode, launched_processes, lazy_module
from iqabench_plugins.mllm.decoding import (
    Decoding,
    check_effective,
    checkpoint_decoding,
    effective_decoding,
)
from iqabench_plugins.mllm.released_configs import (
    QWEN25_VL_7B_IMAGE_PROCESSOR,
    QWEN25_VL_7B_INSTRUCT,
    QWEN25_VL_7B_SOURCE,
)
from iqabench_plugins.mllm.tiny import (
    TINY_CHECKPOINT,
    build_byte_processor,
    build_random_qwen25vl,
    build_tiny_qwen25vl,
)

torch = lazy_module("torch")  # imported on first use: listing models loads no torch

logger = logging.getLogger(__name__)

#: Qwen2.5-VL sees 14-pixel patches merged 2x2: an image side must cover at least 28 pixels
VISION_FACTOR = 28
#: Qwen2.5-VL's own defaults (preprocessor_config.json of Qwen/Qwen2.5-VL-7B-Instruct), also Q-Insight's training cap
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 16384 * 28 * 28

CONFIG_FILES = ("config.json",)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


# --------------------------------------------------------------------------------------------- images


def qwen_vl_size(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` that qwen-vl-utils' ``smart_resize`` gives an image (what the releases feed the model).

    Sides rounded to multiples of 28 (at least 28), then scaled into
    [``min_pixels``, ``max_pixels``] keeping the aspect ratio: floored to 28
    when too large, ceiled when too small.
    """
    sides = (width, height)
    size = [max(VISION_FACTOR, round(side / VISION_FACTOR) * VISION_FACTOR) for side in sides]
    if size[0] * size[1] > max_pixels:
        shrink = math.sqrt(width * height / max_pixels)
        size = [math.floor(side / shrink / VISION_FACTOR) * VISION_FACTOR for side in sides]
    elif size[0] * size[1] < min_pixels:
        grow = math.sqrt(min_pixels / (width * height))
        size = [math.ceil(side * grow / VISION_FACTOR) * VISION_FACTOR for side in sides]
    return size[0], size[1]


@dataclass(frozen=True)
class FitForVisionTower:
    """Preprocessor (picklable, run in decode workers): the releases' image path, qwen-vl-utils' ``fetch_image``.

    Q-Insight and VisualQuality-R1 pass their images through
    ``qwen_vl_utils.process_vision_info``, which resizes each one with PIL
    (bicubic) to :func:`qwen_vl_size` before the processor sees it; the
    processor then finds nothing left to resize. Doing the same here keeps the
    resampling PIL's, whatever backend the installed transformers gives the
    processor (transformers 5's default resizes with torchvision, whose
    bicubic differs by a few grey levels). An image with a side under one
    28-pixel patch is enlarged like any other, with a warning; an aspect ratio
    above 200 is an error (Qwen2.5-VL cannot patch it).
    """

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = 200.0

    def __call__(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB") if image.mode != "RGB" else image
        size = self.fitted_size(*image.size)
        return image if size == image.size else image.resize(size, Image.BICUBIC)

    def fitted_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` the image is resized to; an aspect ratio Qwen2.5-VL cannot patch is an error."""
        if max(width, height) / max(1, min(width, height)) > self.max_aspect_ratio:
            raise ValueError(
                f"image of {width}x{height} pixels has an aspect ratio above {self.max_aspect_ratio:g}, which "
                "Qwen2.5-VL cannot patch; crop it or pad it before scoring."
            )
        size = qwen_vl_size(width, height, self.min_pixels, self.max_pixels)
        if min(width, height) < VISION_FACTOR:
            logger.warning(
                "image of %dx%d pixels is smaller than the vision tower's %d-pixel patch; resized up to %dx%d",
                width, height, VISION_FACTOR, *size,
            )
        return size


# --------------------------------------------------------------------------------------------- checkpoints


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA (what the authors run) and float32 elsewhere."""
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise IQABenchError(f"dtype {dtype!r} is not one of auto, {', '.join(table)}.")
    return table[dtype]


def _looks_like_path(checkpoint: str) -> bool:
    """Hub ids are ``owner/name``; anything else that names a place on disk is a path."""
    return (
        checkpoint.startswith(("/", ".", "~"))
        or os.sep in checkpoint.replace("/", "", 1)
        or checkpoint.count("/") != 1
        or Path(checkpoint).exists()
    )


def check_checkpoint_folder(folder: Path) -> None:
    """Raise :class:`CheckpointError` naming the folder and the files a loadable checkpoint has."""
    expected = (
        f"  {' | '.join(CONFIG_FILES)}\n  {' | '.join(WEIGHT_FILES)} (or sharded model-*.safetensors)\n"
        f"  {' | '.join(PROCESSOR_FILES)}\n  {' | '.join(TOKENIZER_FILES)}"
    )
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder not found: {folder}. A Qwen2.5-VL checkpoint folder holds:\n{expected}\n"
            "Pass an existing folder with -o checkpoint=DIR, or a hub id such as ByteDance/Q-Insight."
        )
    names = {path.name for path in folder.iterdir()}
    missing = []
    if not names & set(CONFIG_FILES):
        missing.append(" | ".join(CONFIG_FILES))
    if not names & set(WEIGHT_FILES) and not any(n.endswith(".safetensors") for n in names):
        missing.append(" | ".join(WEIGHT_FILES))
    if not names & set(PROCESSOR_FILES):
        missing.append(" | ".join(PROCESSOR_FILES))
    if not names & set(TOKENIZER_FILES):
        missing.append(" | ".join(TOKENIZER_FILES))
    if missing:
        nested = sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "config.json").exists())
        hint = f" It has checkpoint subfolders: {', '.join(nested)}; pass -o subfolder=NAME." if nested else ""
        raise CheckpointError(
            f"incomplete checkpoint folder {folder}: missing {'; '.join(missing)}. A Qwen2.5-VL checkpoint folder "
            f"holds:\n{expected}\n(save_pretrained of the model and of its processor writes them).{hint}"
        )


@dataclass
class CheckpointSource:
    """Where weights come from, resolved once and recorded in ``config()``."""

    checkpoint: str
    subfolder: str | None
    #: a local folder (subfolder applied), or None for a hub id
    folder: Path | None
    random_weights: bool
    #: build the released architecture (:mod:`.released_configs`) with random weights instead of loading
    random_init: bool = False

    @classmethod
    def resolve(cls, checkpoint: str | None, subfolder: str | None, random_init: bool = False) -> CheckpointSource:
        if random_init:
            return cls(QWEN25_VL_7B_SOURCE, None, None, random_weights=True, random_init=True)
        if checkpoint == TINY_CHECKPOINT:
            return cls(checkpoint, None, None, random_weights=True)
        if _looks_like_path(checkpoint):
            folder = Path(os.path.expanduser(checkpoint))
            folder = folder / subfolder if subfolder else folder
            check_checkpoint_folder(folder)
            return cls(checkpoint, subfolder, folder, random_weights=False)
        return cls(checkpoint, subfolder, None, random_weights=False)

    @property
    def is_tiny(self) -> bool:
        return self.checkpoint == TINY_CHECKPOINT

    def pretrained_args(self) -> tuple[str, dict[str, Any]]:
        """``(name_or_path, kwargs)`` for ``from_pretrained``."""
        if self.folder is not None:
            return str(self.folder), {}
        return self.checkpoint, ({"subfolder": self.subfolder} if self.subfolder else {})

    def fetch_error(self, exc: Exception) -> CheckpointError:
        where = f"{self.checkpoint}" + (f" (subfolder {self.subfolder})" if self.subfolder else "")
        include = f" --include '{self.subfolder}/*'" if self.subfolder else ""
        local = "DIR/" + self.subfolder if self.subfolder else "DIR"
        return CheckpointError(
            f"could not load the weights of {where}: {type(exc).__name__}: {exc}\n"
            f"Without internet access (or with HF_HUB_OFFLINE=1) hub weights cannot be fetched. Download them "
            f"elsewhere with `huggingface-cli download {self.checkpoint}{include} --local-dir DIR` and pass "
            f"-o checkpoint={local}."
        )

    def local_path(self) -> str:
        """A folder on disk, downloading a hub snapshot if needed (for backends that want paths, e.g. vLLM)."""
        if self.folder is not None:
            return str(self.folder)
        from huggingface_hub import snapshot_download

        try:
            root = snapshot_download(self.checkpoint,
                                     allow_patterns=[f"{self.subfolder}/*"] if self.subfolder else None)
        except Exception as exc:  # network, auth, offline mode
            raise self.fetch_error(exc) from None
        return str(Path(root) / self.subfolder) if self.subfolder else root

    def to_dict(self) -> dict[str, Any]:
        record = {"checkpoint": self.checkpoint, "subfolder": self.subfolder, "random_weights": self.random_weights}
        if self.random_init:
            record["weights"] = "random weights: timing only (released architecture, no checkpoint loaded)"
        return record


def load_processor(source: CheckpointSource, *, min_pixels: int, max_pixels: int):
    """The checkpoint's processor with the pixel budget applied and left padding for batched generation."""
    if source.is_tiny:
        processor = build_byte_processor(min_pixels=min_pixels, max_pixels=max_pixels)
    elif source.random_init:  # token ids are what cost time; the text they decode to does not matter
        vocab_size = QWEN25_VL_7B_INSTRUCT["text_config"]["vocab_size"]
        processor = build_byte_processor(min_pixels, max_pixels, vocab_size, **QWEN25_VL_7B_IMAGE_PROCESSOR)
    else:
        from transformers import AutoProcessor

        name, kwargs = source.pretrained_args()
        try:
            processor = AutoProcessor.from_pretrained(
                name, size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **kwargs
            )
        except (OSError, ValueError) as exc:
            raise source.fetch_error(exc) from None
    processor.tokenizer.padding_side = "left"
    return processor


def load_vlm(
    source: CheckpointSource,
    *,
    device: str,
    dtype: torch.dtype,
    attn_implementation: str,
    min_pixels: int,
    max_pixels: int,
):
    """``(model, processor)``: a Qwen2.5-VL-compatible image-text-to-text model in eval mode on ``device``."""
    processor = load_processor(source, min_pixels=min_pixels, max_pixels=max_pixels)
    if source.is_tiny:
        model, _ = build_tiny_qwen25vl(seed=0)
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn_implementation)
    elif source.random_init:
        model = build_random_qwen25vl(QWEN25_VL_7B_INSTRUCT, processor.tokenizer, device=device, dtype=dtype,
                                      attn_implementation=attn_implementation)
    else:
        from transformers import AutoModelForImageTextToText

        name, kwargs = source.pretrained_args()
        try:
            model = AutoModelForImageTextToText.from_pretrained(
                name, dtype=dtype, attn_implementation=attn_implementation, **kwargs
            )
        except (OSError, ValueError) as exc:
            raise source.fetch_error(exc) from None
    model = model.to(device=device, dtype=dtype).eval()
    return model, processor


# --------------------------------------------------------------------------------------------- OOM back-off

T = TypeVar("T")
R = TypeVar("R")


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


class OomBackoff:
    """Runs a batch function, halving the batch on CUDA out-of-memory and remembering the size that fits."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.limit: int | None = None

    def __call__(self, run: Callable[[Sequence[T]], list[R]], items: Sequence[T]) -> list[R]:
        size = len(items) if self.limit is None else min(self.limit, len(items))
        results: list[R] = []
        start = 0
        while start < len(items):
            chunk = items[start : start + size]
            try:
                results.extend(run(chunk))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if len(chunk) == 1:
                    raise IQABenchError(
                        f"out of memory during {self.what} even at batch size 1. Lower -o max_pixels (fewer visual "
                        "tokens), -o max_new_tokens, use dtype bfloat16, or a larger GPU."
                    ) from exc
                size = max(1, len(chunk) // 2)
                self.limit = size
                logger.warning(
                    "out of memory during %s on a batch of %d; retrying with batch size %d", self.what, len(chunk), size
                )
                continue
            start += len(chunk)
        return results


# --------------------------------------------------------------------------------------------- generation


class TransformersGenerator:
    """Batched ``generate`` with left padding; returns ``num_samples`` completions per conversation.

    The model's ``generation_config`` (read from the checkpoint's
    ``generation_config.json``) is replaced by the one built from
    ``decoding``, so ``generate`` has nothing else to fall back on; the
    checkpoint's own decoding values are kept in :attr:`checkpoint_decoding`
    and the configuration ``generate`` resolves in :attr:`effective`.
    """

    def __init__(self, model, processor, decoding: Decoding, chat_template_kwargs: dict[str, Any] | None = None):
        self.model = model
        self.processor = processor
        self.decoding = decoding
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.backoff = OomBackoff("generation")
        #: non-padding tokens generated so far, for tokens/s measurements
        self.generated_tokens = 0
        own = model.generation_config
        #: what the checkpoint's generation_config.json asked for (ignored; recorded)
        self.checkpoint_decoding = checkpoint_decoding(own)
        self.generation_config = decoding.generation_config(
            eos_token_id=own.eos_token_id,
            pad_token_id=own.pad_token_id if own.pad_token_id is not None else processor.tokenizer.pad_token_id,
            bos_token_id=own.bos_token_id,
        )
        model.generation_config = self.generation_config
        #: the decoding ``generate`` runs with, resolved by transformers itself
        self.effective = effective_decoding(model, self.generation_config)
        check_effective(decoding, self.effective)

    def prompt_texts(self, conversations: Sequence[list[dict]]) -> list[str]:
        return [
            self.processor.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
            )
            for conversation in conversations
        ]

    def generate(self, conversations: Sequence[list[dict]], images: Sequence[Image.Image]) -> list[list[str]]:
        pairs = list(zip(conversations, images))
        return self.backoff(self._generate_batch, pairs)

    @inference_mode
    def _generate_batch(self, pairs: Sequence[tuple[list[dict], Image.Image]]) -> list[list[str]]:
        texts = self.prompt_texts([conversation for conversation, _ in pairs])
        inputs = self.processor(text=texts, images=[image for _, image in pairs], padding=True, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        output = self.model.generate(**inputs, generation_config=self.generation_config)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        self.generated_tokens += count_generated(new_tokens, self.model.generation_config.eos_token_id)
        completions = self.decode(new_tokens)
        n = self.decoding.num_samples
        return [completions[i * n : (i + 1) * n] for i in range(len(pairs))]

    def decode(self, new_tokens: torch.Tensor) -> list[str]:
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def count_generated(new_tokens: torch.Tensor, eos_token_id: int | list[int] | None) -> int:
    """Tokens generated per row up to and including its first end-of-sequence token, summed.

    ``generate`` pads rows that finished early; counting up to the end of sequence, rather than counting
    non-padding ids, stays right when a random model emits the padding id as an ordinary token.
    """
    if eos_token_id is None:
        return new_tokens.numel()
    is_eos = torch.isin(new_tokens, torch.tensor(eos_token_id, device=new_tokens.device).reshape(-1))
    lengths = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, new_tokens.shape[1])
    return int(lengths.sum())


class VllmGenerator:
    """The same interface on vLLM (``pip install vllm``); the sampling seed follows torch's RNG for reproducibility.

    The decoding is passed field by field (:meth:`Decoding.vllm_sampling`), and
    the engine is started with ``generation_config="vllm"`` so that the
    checkpoint's ``generation_config.json`` supplies no defaults, as in the
    transformers backend.

    ``tensor_parallel_size`` splits one model over that many GPUs (a model too large for one). Data parallelism
    is one engine per process of ``accelerate launch -m iqabench ...``: each process scores its share of the
    images with an engine on its own ``tensor_parallel_size`` GPUs (:func:`engine_gpus`).
    """

    def __init__(
        self,
        source: CheckpointSource,
        processor,
        decoding: Decoding,
        *,
        dtype: torch.dtype,
        min_pixels: int,
        max_pixels: int,
        chat_template_kwargs: dict[str, Any] | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise IQABenchError(
                "backend=vllm needs vLLM, which is not installed. Install it with `pip install 'iqabench[vllm]'` "
                "(a CUDA machine), or use the default -o backend=transformers."
            ) from None
        if source.is_tiny:
            from iqabench_plugins.mllm.tiny import save_tiny_qwen25vl

            # vLLM loads from a folder: the tiny model is written to one that lives (and is removed) with the engine
            self._tiny_folder = tempfile.TemporaryDirectory(prefix="iqabench-tiny-qwen25vl-")
            path = str(save_tiny_qwen25vl(self._tiny_folder.name))
        else:
            path = source.local_path()
        self.processor = processor
        self.decoding = decoding
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.generated_tokens = 0
        self.checkpoint_decoding: dict[str, Any] = {}
        self.effective = {**decoding.vllm_sampling(), "how": "vLLM SamplingParams as passed, generation_config='vllm'"}
        with engine_gpus(tensor_parallel_size):
            self.llm = LLM(
                model=path,
                dtype=str(dtype).replace("torch.", ""),
                limit_mm_per_prompt={"image": 1},
                mm_processor_kwargs={"min_pixels": min_pixels, "max_pixels": max_pixels},
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                generation_config="vllm",
            )

    def sampling_params(self):
        from vllm import SamplingParams

        return SamplingParams(**self.decoding.vllm_sampling(), seed=int(torch.randint(0, 2**31 - 1, (1,))))

    def generate(self, conversations: Sequence[list[dict]], images: Sequence[Image.Image]) -> list[list[str]]:
        params = self.sampling_params()
        prompts = [
            {
                "prompt": self.processor.apply_chat_template(
                    conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                ),
                "multi_modal_data": {"image": image},
            }
            for conversation, image in zip(conversations, images)
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        self.generated_tokens += sum(len(c.token_ids) for o in outputs for c in o.outputs)
        return [[c.text for c in o.outputs] for o in outputs]


@contextmanager
def engine_gpus(tensor_parallel_size: int):
    """While a vLLM engine starts, show it only this process's GPUs.

    One process (no launcher): vLLM takes the first ``tensor_parallel_size`` visible GPUs, as usual. Under a
    launch with P processes per machine, process p (``LOCAL_RANK``) gets GPUs ``p*T .. p*T+T-1`` of the visible
    ones (T = ``tensor_parallel_size``), so P engines share the machine's P*T GPUs without overlapping. vLLM
    starts its engine in processes of its own (its default), which inherit ``CUDA_VISIBLE_DEVICES``; the variable
    is restored once the engine is up.
    """
    if tensor_parallel_size < 1:
        raise IQABenchError(f"tensor_parallel_size must be at least 1, got {tensor_parallel_size}.")
    if launched_processes() <= 1:
        yield
        return
    local, per_machine = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = [g for g in before.split(",") if g.strip()] if before is not None else [
        str(i) for i in range(torch.cuda.device_count())]
    if per_machine * tensor_parallel_size > len(visible):
        raise IQABenchError(
            f"{per_machine} processes on this machine with tensor_parallel_size={tensor_parallel_size} need "
            f"{per_machine * tensor_parallel_size} GPUs, but {len(visible)} are visible; launch "
            f"{max(1, len(visible) // tensor_parallel_size)} processes per machine (accelerate launch "
            "--num_processes), or lower tensor_parallel_size."
        )
    mine = visible[local * tensor_parallel_size:(local + 1) * tensor_parallel_size]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before
