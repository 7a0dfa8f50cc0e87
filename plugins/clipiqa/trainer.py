"""The ``coop`` trainer: learns CLIP-IQA+'s prompt context on MOS, as the release did.

CLIP-IQA+ (IceClear/CLIP-IQA, ``configs/clipiqa/clipiqa_coop_koniq.py``) trains
CoOp's 16 context vectors with CLIP RN50 frozen, fitting P("Good photo.") to
KonIQ's MOS / 100 with a mean squared error, on the official training images
at full resolution (1024x768) with horizontal flips: plain SGD (lr 0.002, no
momentum, no weight decay), 64 images per GPU on 2 GPUs (128 per step), and
mmcv's cosine-restart schedule with a 300,000-iteration period decaying to
1e-7. The released checkpoint is iteration 80,000, so its schedule never got
past the first 27% of the period. These are the defaults here (docs/fidelity.md).

Precision follows the release where the device allows: its ``clip.build_model`` converts CLIP to float16
(``convert_weights``) and its ``PromptLearner`` makes the context a float16 Parameter, which plain SGD updates in
float16 (no float32 master copy, no loss scaling: IceClear/CLIP-IQA @061fd3c ``coopclipiqa.py`` lines 89-99,
``mmedit/models/components/clip/model.py`` ``build_model``, ``restorers/clipiqa.py`` ``train_step``). With
``precision="auto"`` (default) that is float16 on CUDA and float32 on the CPU (float16 arithmetic there is slow
and not what the release ran); ``"float16"``/``"float32"`` force either. In float16 the image features, the
caption features, the logits and their softmax are float16, as in the release; the loss is float32.

Because CLIP is frozen (eval mode, batch-norm statistics included) an image's
features do not depend on the context, so they are computed once per image
and per flip before training; each step then only runs the text tower on the
two prompts. This gives the same gradients as encoding every batch afresh, at
a small fraction of the cost, and a step's memory no longer grows with the
image size: the 128-image batch of the release fits any device, so no
gradient accumulation is needed.

Batches are drawn from a stream of seeded random permutations of the training
images, each batch full (the release repeats the dataset 100 times, shuffles
it and drops the last incomplete batch).
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

import iqabench
from iqabench.api import IQABenchError, Trainer, TrainingSet, iterate_batches, progress_bar
from iqabench_plugins.clipiqa.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, brings_own_weights
from iqabench_plugins.clipiqa.checkpoint import save_context
from iqabench_plugins.clipiqa.models import build_prompt_learner, frozen_clip_for
from iqabench_plugins.clipiqa.preprocess import ClipImageTransform, ResizeOption, check_resize
from iqabench_plugins.clipiqa.prompts import COOP_CLASS_NAMES, PromptLearner, coop_prompt

log = logging.getLogger(__name__)

#: the precision of CLIP and of the context: the release's float16, or float32; "auto" picks by device
PRECISIONS = ("auto", "float16", "float32")

#: what the context is fitted to: the release's raw MOS / 100 (KonIQ's 0-100 scale),
#: or iqabench's [1, 5] MOS mapped to [0, 1]
TARGETS = ("raw/100", "rescaled")


def training_targets(datasets: Sequence[TrainingSet], target: str) -> list[float]:
    """P(positive) targets per record; ``raw/100`` needs labels published on a 0-100 scale."""
    if target not in TARGETS:
        raise IQABenchError(f"target {target!r} is not one of {', '.join(TARGETS)}.")
    if target == "rescaled":
        return [(record.mos - 1.0) / 4.0 for dataset in datasets for record in dataset.records]
    for dataset in datasets:
        raw = [record.mos_raw for record in dataset.records]
        if raw and not (0.0 <= min(raw) and max(raw) <= 100.0):
            raise IQABenchError(
                f"target 'raw/100' (the release's KonIQ MOS / 100) needs labels on a 0-100 scale, but {dataset.name!r} "
                f"has raw labels in [{min(raw):g}, {max(raw):g}]; use target: rescaled for this dataset."
            )
        if raw and max(raw) > min(raw):
            lowest = min(dataset.records, key=lambda record: record.mos_raw)
            highest = max(dataset.records, key=lambda record: record.mos_raw)
            if highest.mos < lowest.mos:  # the harness flipped the labels: a higher raw value is worse quality
                raise IQABenchError(
                    f"target 'raw/100' fits P(good photo) to the raw label / 100, but {dataset.name!r} publishes "
                    "lower-is-better labels (DMOS), which would train the prompt upside down; use target: rescaled."
                )
        if raw and max(raw) <= 5.0:
            log.warning("coop: the raw labels of %s are all <= 5, so MOS / 100 targets are all <= 0.05; if this "
                        "dataset is not on a 0-100 scale, use target: rescaled", dataset.name)
    return [record.mos_raw / 100.0 for dataset in datasets for record in dataset.records]


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: the release's float16 on a CUDA device, float32 elsewhere."""
    if precision != "auto":
        return precision
    return "float16" if str(device).startswith("cuda") else "float32"


def cosine_restart_factor(step: int, *, lr: float, min_lr: float, period: int) -> float:
    """The learning rate at ``step`` over the base ``lr``: mmcv's CosineRestart with restart weight 1.

    lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * (t mod period) / period)) / 2
    """
    progress = (step % period) / period
    return (min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))) / lr


class CoOpTrainer(Trainer):
    """CoOp prompt learning for clip-iqa+ as released: 16 context vectors, frozen CLIP, MSE to MOS / 100."""

    name: ClassVar[str] = "coop"
    model: ClassVar[str] = "clip-iqa+"

    def __init__(
        self,
        *,
        iterations: int = 80000,
        batch_size: int = 128,
        lr: float = 0.002,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        lr_period: int = 300000,
        min_lr: float = 1e-7,
        target: str = "raw/100",
        n_ctx: int = 16,
        class_names: Sequence[str] = COOP_CLASS_NAMES,
        hflip: bool = True,
        train_resize: ResizeOption = None,
        feature_batch_size: int = 8,
        num_workers: int = 2,
        precision: str = "auto",
    ) -> None:
        """
        Args:
            iterations: optimiser steps (the released CLIP-IQA+ checkpoint is iteration 80000).
            batch_size: images per step (128: the release's 64 per GPU on 2 GPUs).
            lr, momentum, weight_decay: SGD as configured in the release (0.002; torch's defaults 0 and 0).
            lr_period, min_lr: cosine-restart schedule: the rate falls from ``lr`` to ``min_lr`` over
                ``lr_period`` steps, then restarts (300000 and 1e-7 in the release).
            target: ``"raw/100"`` fits P(good) to the raw MOS / 100 (the release, for labels on 0-100
                such as KonIQ's); ``"rescaled"`` to (mos - 1) / 4 on iqabench's [1, 5] scale (any dataset).
            n_ctx: learned context vectors, half before and half after the class phrase.
            class_names: the [positive, negative] class phrases.
            hflip: augment with horizontal flips (each image seen flipped half the time).
            train_resize: ``None`` trains at the resolution the model scores at (its ``resize``
                option; full resolution by default, as the original); an int (shorter side) or
                [height, width] trains faster at a lower resolution.
            feature_batch_size: images per forward pass when computing the frozen image features.
            num_workers: image-decoding processes.
            precision: ``"auto"`` (float16 on CUDA as the release, float32 on the CPU), ``"float16"`` or
                ``"float32"``.
        """
        if iterations < 1 or batch_size < 1 or lr_period < 1:
            raise IQABenchError(
                f"iterations={iterations}, batch_size={batch_size} and lr_period={lr_period} must be at least 1."
            )
        if target not in TARGETS:
            raise IQABenchError(f"target {target!r} is not one of {', '.join(TARGETS)}.")
        if precision not in PRECISIONS:
            raise IQABenchError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}.")
        self.precision = precision
        self.iterations = iterations
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lr_period = lr_period
        self.min_lr = min_lr
        self.target = target
        self.n_ctx = n_ctx
        self.class_names = tuple(class_names)
        self.hflip = hflip
        self.train_resize = check_resize(train_resize)
        self.feature_batch_size = feature_batch_size
        self.num_workers = num_workers

    def runtime_config(self) -> dict[str, Any]:
        return {"schedule": "cosine with restarts (lr_period, min_lr)", "loss": "mse(P(positive), target)"}

    def train(
        self,
        model_options: dict[str, Any],
        datasets: Sequence[TrainingSet],
        out_dir: Path,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> dict[str, Any]:
        model_name = model_options.get("model_name") or "RN50"
        pretrained = model_options.get("pretrained", "openai")
        if brings_own_weights(model_name):
            pretrained = None
        elif pretrained is None:
            raise IQABenchError(
                "the coop trainer needs pretrained CLIP weights, but pretrained=None builds a randomly initialised "
                "CLIP whose weights a later load could not reproduce; pass an open_clip tag or a weights file."
            )
        pos_embedding = bool(model_options.get("pos_embedding") or False)
        resize = self.train_resize if self.train_resize is not None else check_resize(model_options.get("resize"))
        paths = [path for dataset in datasets for path in dataset.image_paths()]
        if not paths:
            raise IQABenchError("the coop trainer got no training images; check the suite's training datasets.")
        targets = training_targets(datasets, self.target)

        half = resolve_precision(self.precision, device) == "float16"
        clip = frozen_clip_for(model_name, pretrained, resize, pos_embedding, device=device,
                               precision="fp16" if half else "fp32")
        transform = ClipImageTransform(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, resize=resize)
        features = encode_training_images(
            clip, paths, transform, hflip=self.hflip, batch_size=self.feature_batch_size, num_workers=self.num_workers
        )
        generator = torch.Generator().manual_seed(seed)
        learner = build_prompt_learner(clip, model_name, self.class_names, self.n_ctx, generator=generator,
                                       dtype=torch.float16 if half else None)
        losses = fit_context(
            learner,
            features,
            torch.tensor(targets, dtype=torch.float32, device=features.device),
            logit_scale=float(clip.logit_scale.exp()),
            iterations=self.iterations,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            lr_period=self.lr_period,
            min_lr=self.min_lr,
            generator=generator,
        )
        tail = losses[-100:]
        save_context(
            out_dir,
            learner.context,
            {
                "model_name": model_name,
                "pretrained": pretrained,
                "n_ctx": self.n_ctx,
                "class_names": list(self.class_names),
                "class_token_position": "middle",
                "prompts": [coop_prompt(name, self.n_ctx) for name in self.class_names],
                "pos_embedding": pos_embedding,
                "train_resize": resize,
                "target": self.target,
                "precision": "float16" if half else "float32",
                "provenance": {
                    "trainer": self.name,
                    "trainer_config": self.config(),
                    "loss": "mean squared error between P(positive) and the target",
                    "seed": seed,
                    "datasets": [{"name": d.name, "root": str(d.root), "images": len(d.records)} for d in datasets],
                    "final_loss": sum(tail) / len(tail),
                    "iqabench_version": iqabench.__version__,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                },
            },
        )
        return {"checkpoint": str(out_dir)}


@torch.no_grad()  # not inference_mode: the features enter the autograd graph of the context
def encode_training_images(
    clip: torch.nn.Module,
    paths: Sequence[Path],
    transform: ClipImageTransform,
    *,
    hflip: bool,
    batch_size: int,
    num_workers: int,
) -> torch.Tensor:
    """Normalised image features, shape (views, images, dim): view 0 as is, view 1 flipped.

    In CLIP's own precision: float16 features of a float16 CLIP (as the release normalises them), else float32.
    """
    device = next(clip.parameters()).device
    dtype = clip.visual.conv1.weight.dtype if hasattr(clip.visual, "conv1") else next(clip.parameters()).dtype
    views: list[list[torch.Tensor | None]] = [[None] * len(paths) for _ in range(2 if hflip else 1)]
    batches = iterate_batches(paths, transform, batch_size=batch_size, num_workers=num_workers)
    bar = progress_bar(total=-(-len(paths) // batch_size), desc="coop: image features", unit="batch")
    for batch in batches:
        bar.update(1)
        for item in batch:
            if item.error is not None:
                raise IQABenchError(f"training image {paths[item.index]} cannot be used: {item.error}")
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for position, item in enumerate(batch):
            by_shape.setdefault(tuple(item.item.shape), []).append(position)
        for positions in by_shape.values():
            images = torch.stack([batch[p].item for p in positions]).to(device, dtype)
            for view, flipped in zip(views, (images, images.flip(-1)), strict=False):
                encoded = clip.encode_image(flipped)
                encoded = encoded / encoded.norm(dim=-1, keepdim=True)
                for p, feature in zip(positions, encoded, strict=True):
                    view[batch[p].index] = feature
    bar.close()
    return torch.stack([torch.stack(view) for view in views])  # type: ignore[arg-type]


def fit_context(
    learner: PromptLearner,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    logit_scale: float,
    iterations: int,
    batch_size: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    lr_period: int,
    min_lr: float,
    generator: torch.Generator,
) -> list[float]:
    """SGD on the context alone with the cosine-restart schedule; returns the loss of every step.

    Each batch takes the next ``batch_size`` images of a stream of random
    permutations (a batch may span two of them, so every batch is full);
    each sample takes a random view (flipped or not) when ``features`` holds two.
    """
    optimizer = torch.optim.SGD(learner.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_restart_factor(step, lr=lr, min_lr=min_lr, period=lr_period)
    )
    views, count, _ = features.shape
    stream = torch.randperm(count, generator=generator)
    losses = []
    bar = progress_bar(total=iterations, desc="coop: prompt context", unit="step")
    for _ in range(iterations):
        bar.update(1)
        while len(stream) < batch_size:
            stream = torch.cat([stream, torch.randperm(count, generator=generator)])
        chosen, stream = stream[:batch_size], stream[batch_size:]
        view = torch.randint(views, (len(chosen),), generator=generator)
        batch = features[view.to(features.device), chosen.to(features.device)]
        captions = learner().to(features.dtype)
        captions = captions / captions.norm(dim=-1, keepdim=True)
        # in the features' precision: float16 logits and softmax for a float16 CLIP, as the release computes them
        probability = (logit_scale * batch @ captions.T).softmax(dim=-1)[:, 0].float()
        loss = F.mse_loss(probability, targets[chosen.to(targets.device)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    bar.close()
    return losses
