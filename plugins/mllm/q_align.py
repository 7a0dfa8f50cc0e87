"""Q-Align: the expected quality level from one forward pass, no generation.

Q-Align (Wu et al., ICML 2024) asks "How would you rate the quality of this
image?", starts the reply with "The quality of the image is", and reads the
logits of the next token for the five level words excellent, good, fair,
poor, bad. The score is the expectation of the softmax over those five logits
with weights 5..1, so it lies in [1, 5] and is deterministic.

Two routes:

* generic (default): any transformers image-text-to-text checkpoint (a
  Qwen2.5-VL fine-tuned on Q-Align levels, or the tiny model); this module's
  own code, prompt through the checkpoint's chat template;
* ``trust_remote_code=True``: the official ``q-future/one-align`` (mPLUG-Owl2),
  whose remote code carries its own prompt, padding to square and
  ``model.score``; it needs an older transformers (see docs/mllm.md). Its code
  is non-commercial (S-Lab licence) and is never copied here.

Level tokens: the first sub-token of each word, with a leading space when that
gives five distinct tokens (BPE tokenizers: " excellent" is one token after
"is"), else without (byte-level or SentencePiece tokenizers, where the space
variant starts with the same space token for every word). The choice and the
ids are recorded in ``config()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PIL import Image

from iqabench.api import (
    CheckpointError,
    IQABenchError,
    Model,
    ModelTraits,
    Score,
    inference_mode,
    lazy_module,
    normalize,
    resize_bicubic,
)
from iqabench_plugins.mllm.generation import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    CheckpointSource,
    FitForVisionTower,
    OomBackoff,
    load_vlm,
    resolve_dtype,
)
from iqabench_plugins.mllm.prompts import (
    Q_ALIGN_ASSISTANT_PREFIX,
    Q_ALIGN_LEVEL_WEIGHTS,
    Q_ALIGN_LEVELS,
    q_align_messages,
)

torch = lazy_module("torch")  # imported on first use: listing models loads no torch
ONE_ALIGN = "q-future/one-align"


def qwen_vl_patches(pixels: torch.Tensor, patch_size: int, merge_size: int, temporal_patch_size: int) -> torch.Tensor:
    """Normalised ``[B, 3, H, W]`` pixels as Qwen2-VL's image processor lays them out: ``[B * grid, dim]``.

    Each image is cut into ``patch_size`` squares, ordered by ``merge_size`` x
    ``merge_size`` blocks (row-major blocks, row-major inside a block); a patch
    is flattened as (channel, time, row, column), the still image repeated
    ``temporal_patch_size`` times along time. A reshape, so gradients pass.
    """
    batch, channels, height, width = pixels.shape
    grid_h, grid_w = height // patch_size, width // patch_size
    patches = pixels.reshape(batch, channels, grid_h // merge_size, merge_size, patch_size,
                             grid_w // merge_size, merge_size, patch_size)
    patches = patches.permute(0, 2, 5, 3, 6, 1, 4, 7)  # batch, block row, block col, row, col, channel, py, px
    patches = patches.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, temporal_patch_size, -1, -1)
    return patches.reshape(batch * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)


def expected_level_score(logits_5: torch.Tensor | Sequence[float]) -> float:
    """Softmax over the logits of (excellent, good, fair, poor, bad), weighted 5, 4, 3, 2, 1."""
    logits = torch.as_tensor(logits_5, dtype=torch.float64)
    if logits.shape != (len(Q_ALIGN_LEVELS),):
        raise ValueError(f"expected {len(Q_ALIGN_LEVELS)} level logits, got shape {tuple(logits.shape)}")
    weights = torch.tensor(Q_ALIGN_LEVEL_WEIGHTS, dtype=torch.float64)
    return float(torch.softmax(logits, dim=0) @ weights)


def remote_score_kwargs(score) -> dict[str, str]:
    """one-align's ``score(images, task_="quality", input_="image")``; DeQA-Score's remote ``score(images)`` takes
    no task: pass the keywords only to a ``score`` that has them."""
    import inspect

    try:
        parameters = inspect.signature(score).parameters
    except (TypeError, ValueError):
        parameters = {}
    wanted = {"task_": "quality", "input_": "image"}
    return {key: value for key, value in wanted.items() if key in parameters}


def level_token_ids(tokenizer) -> tuple[list[int], str]:
    """The token id that starts each level word after "is", and which spelling was used."""
    for variant, prefix in (("leading-space", " "), ("bare", "")):
        ids = [tokenizer.encode(prefix + word, add_special_tokens=False)[0] for word in Q_ALIGN_LEVELS]
        if len(set(ids)) == len(ids):
            return ids, variant
    raise CheckpointError(
        "the tokenizer maps two Q-Align level words (excellent, good, fair, poor, bad) to the same first token, "
        "so their probabilities cannot be told apart; this checkpoint cannot be scored with the level method."
    )


class QAlign(Model):
    """Q-Align's level-token score on a transformers VLM, or the official one-align through remote code."""

    name = "q-align"
    score_range = (1.0, 5.0)
    #: differentiable: the level-token route; the remote-code route (one-align's own ``model.score``) is not
    traits = ModelTraits(preprocessing="resize", differentiable=True)

    def __init__(
        self,
        *,
        checkpoint: str = ONE_ALIGN,
        subfolder: str | None = None,
        trust_remote_code: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        attn_implementation: str = "sdpa",
        device: str = "cpu",
        dtype: str = "auto",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        self.checkpoint = checkpoint
        self.subfolder = subfolder
        self.trust_remote_code = trust_remote_code
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.attn_implementation = attn_implementation
        self.backoff = OomBackoff("the Q-Align forward pass")
        if self.trust_remote_code:
            self.torch_dtype = torch.float16 if dtype == "auto" else resolve_dtype(dtype, device)
            self.source = CheckpointSource.resolve(checkpoint, subfolder)
            self.model = self._load_remote_code()
            self.processor = None
            self.level_ids, self.level_variant = [], "remote code"
            self.traits = replace(self.traits, differentiable=False)
            return
        if checkpoint == ONE_ALIGN:
            raise CheckpointError(
                f"{ONE_ALIGN} (mPLUG-Owl2) loads only through its own remote code. Opt in with "
                "-o trust_remote_code=true (it needs transformers 4.36-4.37, see docs/mllm.md), or pass "
                "-o checkpoint=DIR for a transformers image-text-to-text model fine-tuned on Q-Align levels."
            )
        self.torch_dtype = resolve_dtype(dtype, device)
        self.source = CheckpointSource.resolve(checkpoint, subfolder)
        self.model, self.processor = load_vlm(
            self.source,
            device=device,
            dtype=self.torch_dtype,
            attn_implementation=attn_implementation,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        self.level_ids, self.level_variant = level_token_ids(self.processor.tokenizer)
        self.model.requires_grad_(False)  # scoring only: gradients, if asked for, go to the pixels
        self._text_inputs: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    def _load_remote_code(self):
        from transformers import AutoModelForCausalLM

        name, kwargs = self.source.pretrained_args()
        try:
            model = AutoModelForCausalLM.from_pretrained(
                name, trust_remote_code=True, attn_implementation="eager", torch_dtype=self.torch_dtype, **kwargs
            )
        except (OSError, ValueError, ImportError, AttributeError, TypeError) as exc:
            raise CheckpointError(
                f"could not load {self.source.checkpoint} with its remote code: {type(exc).__name__}: {exc}\n"
                "The one-align remote code needs transformers 4.36-4.37 (pip install 'transformers==4.37.2' in a "
                "separate environment), accelerate, and the weights (huggingface-cli download q-future/one-align)."
            ) from None
        return model.to(self.device).eval()

    def preprocessor(self):
        if self.trust_remote_code:  # one-align pads to square and runs its own CLIP preprocessing
            return super().preprocessor()
        return FitForVisionTower(min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def prompt_text(self, image: Image.Image) -> str:
        """The chat-formatted question followed by the assistant's opening words."""
        template = self.processor.apply_chat_template(q_align_messages(image), tokenize=False,
                                                      add_generation_prompt=True)
        return template + Q_ALIGN_ASSISTANT_PREFIX

    @inference_mode
    def level_logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[batch, 5]`` next-token logits of the five level tokens after the assistant prefix."""
        inputs = self.processor(
            text=[self.prompt_text(image) for image in images], images=list(images), padding=True, return_tensors="pt"
        ).to(self.model.device)
        logits = self.model(**inputs, logits_to_keep=1).logits[:, -1, :]  # left padding: last position is real
        return logits[:, self.level_ids].float().cpu()

    def score_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The tensor path of the level-token route: the expected level of ``[B, 3, H, W]`` pixels in [0, 1].

        The image processor's steps in torch: the resize of :class:`FitForVisionTower`
        (bicubic, within a grey level of PIL's), normalisation with the
        processor's mean and std, and its patch layout (:func:`qwen_vl_patches`).
        The prompt's tokens depend only on the image size, so they come from the
        processor itself (on a blank image of that size) and are reused.
        Gradients reach ``pixels``.
        """
        if self.trust_remote_code:
            raise IQABenchError("q-align through one-align's remote code has no tensor path; use the level-token "
                                "route.")
        fit = FitForVisionTower(min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        width, height = fit.fitted_size(pixels.shape[-1], pixels.shape[-2])
        images = self.processor.image_processor
        pixels = resize_bicubic(pixels.to(self.model.device), (height, width))
        patches = qwen_vl_patches(normalize(pixels, images.image_mean, images.image_std), images.patch_size,
                                  images.merge_size, images.temporal_patch_size)
        text = self.text_inputs(width, height)
        batch = pixels.shape[0]
        logits = self.model(
            input_ids=text["input_ids"].repeat(batch, 1),
            attention_mask=text["attention_mask"].repeat(batch, 1),
            image_grid_thw=text["image_grid_thw"].repeat(batch, 1),
            pixel_values=patches.to(self.torch_dtype),
            logits_to_keep=1,
        ).logits[:, -1, self.level_ids].float()
        weights = torch.tensor(Q_ALIGN_LEVEL_WEIGHTS, dtype=torch.float32, device=logits.device)
        return torch.softmax(logits, dim=-1) @ weights

    def text_inputs(self, width: int, height: int) -> dict[str, torch.Tensor]:
        """Token ids, attention mask and patch grid of one prompt with an image of ``width`` x ``height``."""
        if (width, height) not in self._text_inputs:
            blank = Image.new("RGB", (width, height))
            inputs = self.processor(text=[self.prompt_text(blank)], images=[blank], return_tensors="pt")
            grid = inputs["image_grid_thw"][0].tolist()
            patch = self.processor.image_processor.patch_size
            if grid[1:] != [height // patch, width // patch]:
                raise IQABenchError(f"the processor resized a {width}x{height} image to a {grid} patch grid; the "
                                    "tensor path needs the processor to keep the fitted size.")
            self._text_inputs[(width, height)] = {
                key: inputs[key].to(self.model.device) for key in ("input_ids", "attention_mask", "image_grid_thw")
            }
        return self._text_inputs[(width, height)]

    def score_batch(self, items: Sequence[Image.Image]) -> list[Score]:
        if self.trust_remote_code:
            with torch.inference_mode():
                values = self.model.score(list(items), **remote_score_kwargs(self.model.score))
            return [Score.ok(float(v)) for v in torch.as_tensor(values).flatten().tolist()]
        rows = self.backoff(lambda chunk: list(self.level_logits(chunk)), list(items))
        return [Score.ok(expected_level_score(row)) for row in rows]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def input_resolution(self) -> str:
        if self.trust_remote_code:
            return "one-align remote code: padded to square, then its own CLIP preprocessing"
        return f"Qwen2.5-VL smart_resize to multiples of 28 within {self.min_pixels}..{self.max_pixels} pixels"

    def runtime_config(self) -> dict[str, Any]:
        return {
            "dtype": str(self.torch_dtype).replace("torch.", ""),
            **self.source.to_dict(),
            "route": "one-align remote code" if self.trust_remote_code else "generic level tokens",
            "min_pixels": None if self.trust_remote_code else self.min_pixels,
            "max_pixels": None if self.trust_remote_code else self.max_pixels,
            "attn_implementation": self.attn_implementation,
            "levels": list(Q_ALIGN_LEVELS),
            "level_weights": list(Q_ALIGN_LEVEL_WEIGHTS),
            "level_token_variant": self.level_variant,
            "level_token_ids": self.level_ids,
            "decoding": {"mode": "single forward, no generation"},
        }
