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
from typing import Any

from PIL import Image

from iqabench.errors import CheckpointError
from iqabench.lazy import inference_mode, lazy_module
from iqabench.model import Model, Score
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


def expected_level_score(logits_5: torch.Tensor | Sequence[float]) -> float:
    """Softmax over the logits of (excellent, good, fair, poor, bad), weighted 5, 4, 3, 2, 1."""
    logits = torch.as_tensor(logits_5, dtype=torch.float64)
    if logits.shape != (len(Q_ALIGN_LEVELS),):
        raise ValueError(f"expected {len(Q_ALIGN_LEVELS)} level logits, got shape {tuple(logits.shape)}")
    weights = torch.tensor(Q_ALIGN_LEVEL_WEIGHTS, dtype=torch.float64)
    return float(torch.softmax(logits, dim=0) @ weights)


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
    preprocessing = "resize"
    generative = False

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
        template = self.processor.apply_chat_template(q_align_messages(image), tokenize=False, add_generation_prompt=True)
        return template + Q_ALIGN_ASSISTANT_PREFIX

    @inference_mode
    def level_logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[batch, 5]`` next-token logits of the five level tokens after the assistant prefix."""
        inputs = self.processor(
            text=[self.prompt_text(image) for image in images], images=list(images), padding=True, return_tensors="pt"
        ).to(self.model.device)
        logits = self.model(**inputs, logits_to_keep=1).logits[:, -1, :]  # left padding: last position is real
        return logits[:, self.level_ids].float().cpu()

    def score_batch(self, items: Sequence[Image.Image]) -> list[Score]:
        if self.trust_remote_code:
            with torch.inference_mode():
                values = self.model.score(list(items), task_="quality", input_="image")
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
