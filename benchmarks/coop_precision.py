"""CLIP-IQA+'s prompt learning in the release's float16 against float32, on a tiny CLIP on the CPU.

    python benchmarks/coop_precision.py [STEPS]     # default 2000

The release trains a float16 context with plain SGD on a float16 CLIP (docs/fidelity.md, `coop`). This runs the
``coop`` trainer's own code (:func:`fit_context`) twice from the same context and the same batches, once per
precision, with the release's learning rate and schedule, on 64 synthetic images graded from sharp to blurred and
a tiny random ResNet CLIP (no CLIP weights can be had offline); float16 runs on the CPU, which the `auto` setting
never does. It prints the share of context values that float16 left unchanged over the run, the largest context
difference, and the correlations of both contexts' P(good), scored in float32 as the suites score, with the
targets and with each other. It estimates
the numerics of the precision choice only: the size of the effect on KonIQ with RN50 needs the real model and a GPU.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from scipy.stats import pearsonr, spearmanr

import iqabench  # noqa: F401  (the torchvision shim)
from iqabench_plugins.clipiqa.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, load_clip
from iqabench_plugins.clipiqa.models import build_prompt_learner
from iqabench_plugins.clipiqa.trainer import fit_context

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import save_tiny_open_clip  # noqa: E402

CLASSES = ["Good photo.", "Bad photo."]


def graded_images(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    pixels, targets = [], []
    for i in range(count):
        base = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))
        radius = 3.0 * i / (count - 1)
        image = np.asarray(base.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
        image = (image - np.array(OPENAI_CLIP_MEAN, dtype=np.float32)) / np.array(OPENAI_CLIP_STD, dtype=np.float32)
        pixels.append(torch.from_numpy(image).permute(2, 0, 1))
        targets.append(1.0 - i / (count - 1))  # sharp is good
    return torch.stack(pixels), torch.tensor(targets)


def run(name: str, weights: str, precision: str, pixels: torch.Tensor, targets: torch.Tensor, steps: int):
    half = precision == "fp16"
    clip = load_clip(name, weights, precision=precision)
    learner = build_prompt_learner(clip, name, CLASSES, 16, generator=torch.Generator().manual_seed(0),
                                   dtype=torch.float16 if half else None)
    with torch.no_grad():
        features = clip.encode_image(pixels.to(torch.float16 if half else torch.float32))
        features = (features / features.norm(dim=-1, keepdim=True))[None]
    start = learner.context.detach().float().clone()
    scale = float(clip.logit_scale.exp())
    fit_context(learner, features, targets, logit_scale=scale, iterations=steps, batch_size=32, lr=0.002,
                momentum=0.0, weight_decay=0.0, lr_period=300000, min_lr=1e-7,
                generator=torch.Generator().manual_seed(1))
    return start, learner.context.detach().float()


def scored_in_float32(name: str, weights: str, context: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """P(good) with a learned context, computed in float32 as the clip-iqa+ model scores (the suites' dtype)."""
    clip = load_clip(name, weights)
    learner = build_prompt_learner(clip, name, CLASSES, 16)
    with torch.no_grad():
        learner.context.copy_(context)
        features = clip.encode_image(pixels)
        features = features / features.norm(dim=-1, keepdim=True)
        captions = learner()
        captions = captions / captions.norm(dim=-1, keepdim=True)
        return (float(clip.logit_scale.exp()) * features @ captions.T).softmax(dim=-1)[:, 0]


def main(steps: int = 2000) -> None:
    pixels, targets = graded_images()
    with tempfile.TemporaryDirectory() as folder:
        name, weights = save_tiny_open_clip(Path(folder))
        start32, end32 = run(name, weights, "fp32", pixels, targets, steps)
        start16, end16 = run(name, weights, "fp16", pixels, targets, steps)
        p32, p16 = (scored_in_float32(name, weights, end, pixels) for end in (end32, end16))
    unchanged = (end16 == start16).float().mean().item()
    print(f"steps {steps}; float16 context values never changed: {unchanged:.1%} "
          f"(float32: {(end32 == start32).float().mean().item():.1%})")
    print(f"largest |float16 - float32| context difference: {(end16 - end32).abs().max().item():.2e} "
          f"(context moved by up to {(end32 - start32).abs().max().item():.2e} in float32)")
    for label, p in (("trained in float32", p32), ("trained in float16", p16)):
        print(f"{label}, scored in float32: SRCC {spearmanr(p, targets)[0]:.4f}, "
              f"PLCC {pearsonr(p, targets)[0]:.4f} with the targets")
    print(f"float16 against float32 predictions: PLCC {pearsonr(p16, p32)[0]:.6f}, "
          f"max |difference| {(p16 - p32).abs().max().item():.2e}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
