"""``iqabench convert clip-iqa+ SRC OUT``: the released CLIP-IQA+ prompt context as a ``clip-iqa+`` checkpoint.

CLIP-IQA+'s learned context is published in two forms, both written with
``torch.save`` and both readable with ``torch.load(weights_only=True)``:

* the prompt context alone, a (16, 512) tensor (the file pyiqa downloads for
  ``clipiqa+``, ``CLIP-IQA+_learned_prompts-603f3273.pth``);
* IceClear/CLIP-IQA's training checkpoint (``iter_80000.pth``), an mmcv
  checkpoint whose ``state_dict`` holds the context as
  ``generator.clipmodel_0.prompt_learner.ctx`` next to the frozen CLIP weights
  and the prompt learner's ``token_prefix``/``token_suffix`` buffers.

Both were learned on OpenAI's CLIP RN50 with the classes "Good photo." and
"Bad photo.", the positional embedding left out and KonIQ's MOS / 100 as the
target; the folder written here says so, and loads without pickle
(safetensors and JSON).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any, ClassVar

import torch

from iqabench.api import CheckpointError, Converter
from iqabench_plugins.clipiqa.checkpoint import save_context
from iqabench_plugins.clipiqa.prompts import COOP_CLASS_NAMES, coop_prompt

#: the CLIP the release was trained on, and its text width
RELEASE_MODEL, RELEASE_PRETRAINED, RELEASE_WIDTH = "RN50", "openai", 512
CONTEXT_KEY = "prompt_learner.ctx"


def released_context(loaded: Any) -> torch.Tensor:
    """The (n_ctx, 512) context in whatever the release's file held: a tensor or a (nested) state dict."""
    if isinstance(loaded, torch.Tensor):
        context = loaded
    elif isinstance(loaded, dict):
        state = loaded.get("state_dict", loaded.get("params", loaded))
        keys = [key for key in state if key == "ctx" or key.endswith(CONTEXT_KEY)]
        if len(keys) != 1:
            raise CheckpointError(
                f"expected exactly one '{CONTEXT_KEY}' tensor in the checkpoint's state dict, found {keys or 'none'} "
                f"among {len(state)} keys; is this a CLIP-IQA+ checkpoint?"
            )
        context = state[keys[0]]
        suffix = state.get(keys[0][: -len("ctx")] + "token_suffix")
        if isinstance(suffix, torch.Tensor) and context.ndim == 2 and suffix.shape[1] + 1 + context.shape[0] != 77:
            raise CheckpointError(
                f"the prompt learner's token_suffix {tuple(suffix.shape)} does not fit a context of "
                f"{context.shape[0]} vectors in CLIP's 77 tokens; the checkpoint is inconsistent."
            )
    else:
        raise CheckpointError(f"the file holds a {type(loaded).__name__}, not a CLIP-IQA+ context or state dict.")
    if not isinstance(context, torch.Tensor) or context.ndim != 2 or context.shape[1] != RELEASE_WIDTH:
        shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise CheckpointError(
            f"the CLIP-IQA+ context should be (n_ctx, {RELEASE_WIDTH}) for CLIP RN50, found {shape}; a class-specific "
            "or other-backbone context is not the release."
        )
    if context.shape[0] % 2:
        raise CheckpointError(
            f"the context has {context.shape[0]} vectors; the middle class position needs an even number."
        )
    return context.float()


class ClipIQAPlusReleaseConverter(Converter):
    """Released CLIP-IQA+ context (pyiqa's prompt file or IceClear's iter_80000.pth) -> ``clip-iqa+`` folder."""

    name: ClassVar[str] = "clip-iqa+"
    #: only ``torch.load(weights_only=True)``: tensors and plain containers, no arbitrary unpickling
    reads_pickle: ClassVar[bool] = False

    def convert(self, source: Path, out: Path, *, trust_pickle: bool = False) -> Path:
        source, out = Path(source), Path(out)
        if not source.is_file():
            raise CheckpointError(f"{source} is not a file; pass the released .pth file of CLIP-IQA+.")
        try:
            loaded = torch.load(source, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise CheckpointError(
                f"{source} cannot be read with torch.load(weights_only=True) ({str(exc).splitlines()[0]}); it is not "
                "a plain tensor or state-dict file as CLIP-IQA+ releases them, and iqabench does not unpickle "
                "arbitrary objects."
            ) from None
        context = released_context(loaded)
        n_ctx = int(context.shape[0])
        return save_context(
            out,
            context,
            {
                "model_name": RELEASE_MODEL,
                "pretrained": RELEASE_PRETRAINED,
                "n_ctx": n_ctx,
                "class_names": list(COOP_CLASS_NAMES),
                "class_token_position": "middle",
                "prompts": [coop_prompt(name, n_ctx) for name in COOP_CLASS_NAMES],
                "pos_embedding": False,
                "train_resize": None,
                "target": "raw/100",
                "provenance": {
                    "converted_from": str(source.resolve()),
                    "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                    "source": "CLIP-IQA+ release (IceClear/CLIP-IQA, KonIQ-10k, iteration 80000)",
                },
            },
        )
