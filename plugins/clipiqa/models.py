"""CLIP-IQA (zero-shot) and CLIP-IQA+ (learned prompt context) as iqabench models.

Both score an image as the probability CLIP gives the positive caption of an
antonym pair: softmax over the pair of ``logit_scale * cos(image, caption)``.
They differ only in where the caption features come from: fixed text for
CLIP-IQA, the CoOp context learned by the ``coop`` trainer for CLIP-IQA+.
Caption features do not depend on the image, so they are computed once.

Images are scored at full resolution by default, as CLIP-IQA does. Images of
different sizes cannot share a tensor, so :meth:`score_batch` runs one forward
pass per group of same-sized images (all of KonIQ is 1024x768, so one group).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from iqabench.api import IQABenchError, Model, ModelTraits, Score, inference_mode, lazy_module
from iqabench_plugins.clipiqa.preprocess import ClipImageTransform, ResizeOption, check_resize, describe_resize

if TYPE_CHECKING:
    from iqabench_plugins.clipiqa.prompts import PromptLearner

# torch and the CLIP modules (backbone, prompts, checkpoint) load when a model is built: listing stays fast.
torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")

#: ModifiedResNet downsamples by 32; a smaller side leaves no feature map to pool
RESNET_MIN_SIDE = 32


def check_tower_input(model: torch.nn.Module, model_name: str, resize: int | tuple[int, int] | None) -> None:
    """Fixed-resolution towers (ViT, ConvNeXt...) take exactly their training size."""
    from iqabench_plugins.clipiqa.backbone import is_resnet_tower, tower_image_size

    if is_resnet_tower(model):
        return
    size = tower_image_size(model)
    if size is None and isinstance(resize, tuple) or size is not None and resize == size:
        return
    needed = f"resize={list(size)}" if size else "resize=[height, width] (the size it was trained at)"
    raise IQABenchError(
        f"{model_name!r} has a fixed-resolution vision tower; only CLIP's ResNet towers take full-resolution "
        f"or arbitrary-size images. Pass {needed}."
    )


def frozen_clip_for(
    model_name: str, pretrained: str | None, resize: int | tuple[int, int] | None, pos_embedding: bool, *, device: str,
    precision: str = "fp32",
) -> torch.nn.Module:
    """The frozen CLIP that scores (or trains a context) at ``resize``; ResNet pools made resolution-free."""
    from iqabench_plugins.clipiqa.backbone import is_resnet_tower, load_clip, make_resolution_free

    clip = load_clip(model_name, pretrained, device=device, precision=precision)
    check_tower_input(clip, model_name, resize)
    if is_resnet_tower(clip):
        make_resolution_free(clip, pos_embedding)
    return clip


class ClipPairScorer(Model):
    """Shared machinery: a frozen CLIP, caption-pair features, and batched scoring.

    Subclasses call :meth:`setup_clip`, then :meth:`set_caption_features`
    with (pairs, 2, dim) features, positive caption first.
    """

    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    traits = ModelTraits(differentiable=True)

    def setup_clip(
        self, model_name: str, pretrained: str | None, resize: ResizeOption, pos_embedding: bool
    ) -> None:
        from iqabench_plugins.clipiqa.backbone import brings_own_weights, torch_dtype

        self.model_name = model_name
        self.pretrained = None if brings_own_weights(model_name) else pretrained
        self.resize = check_resize(resize)
        self.pos_embedding = bool(pos_embedding)
        self.clip = frozen_clip_for(model_name, pretrained, self.resize, self.pos_embedding, device=self.device)
        self.clip.to(torch_dtype(self.dtype))
        self.traits = replace(self.traits, preprocessing="full-resolution" if self.resize is None else "resize")
        self.logit_scale = float(self.clip.logit_scale.exp())

    def set_caption_features(self, features: torch.Tensor) -> None:
        self.caption_features = F.normalize(features.float(), dim=-1).to(self.device)

    def preprocessor(self) -> ClipImageTransform:
        from iqabench_plugins.clipiqa.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

        return ClipImageTransform(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, resize=self.resize)

    @inference_mode
    def positive_probability(self, images: torch.Tensor) -> torch.Tensor:
        """P(positive caption) per image, averaged over caption pairs; shape (N,)."""
        return self.probability_with_grad(images)

    def probability_with_grad(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`positive_probability` under the caller's grad mode (the tensor path differentiates it)."""
        from iqabench_plugins.clipiqa.backbone import torch_dtype

        features = self.clip.encode_image(images.to(self.device, torch_dtype(self.dtype)))
        features = F.normalize(features.float(), dim=-1)
        pairs = self.caption_features
        logits = self.logit_scale * torch.einsum("nd,pkd->npk", features, pairs)
        return logits.softmax(dim=-1)[..., 0].mean(dim=-1)

    def report(self, probability: float) -> float:
        """The reported score for a probability; CLIP-IQA reports P(positive) itself."""
        return probability

    def score_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The tensor path: :meth:`ClipImageTransform.transform_pixels`, then the probability and the reported
        score as :meth:`score_batch` computes them; gradients reach ``pixels``."""
        from iqabench_plugins.clipiqa.backbone import is_resnet_tower

        images = self.preprocessor().transform_pixels(pixels.to(self.device))
        height, width = images.shape[-2:]
        if is_resnet_tower(self.clip) and min(height, width) < RESNET_MIN_SIDE:
            raise IQABenchError(f"images of {width}x{height}: CLIP's ResNet needs at least {RESNET_MIN_SIDE} px per "
                                "side (pass resize=224 to upscale small images)")
        return self.report(self.probability_with_grad(images))

    def score_batch(self, items: Sequence[torch.Tensor]) -> list[Score]:
        from iqabench_plugins.clipiqa.backbone import is_resnet_tower

        scores: list[Score | None] = [None] * len(items)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            height, width = item.shape[-2:]
            if is_resnet_tower(self.clip) and min(height, width) < RESNET_MIN_SIDE:
                scores[index] = Score.failure(
                    f"image is {width}x{height}; CLIP's ResNet needs at least {RESNET_MIN_SIDE} px per side "
                    f"(pass resize=224 to upscale small images)"
                )
            else:
                groups[tuple(item.shape)].append(index)
        for indices in groups.values():
            for index, score in zip(indices, self.score_group([items[i] for i in indices]), strict=True):
                scores[index] = score
        return scores  # type: ignore[return-value]

    def score_group(self, images: list[torch.Tensor]) -> list[Score]:
        """Score same-sized images together; if that fails (e.g. out of memory), one at a time."""
        try:
            probabilities = self.positive_probability(torch.stack(images)).tolist()
        except RuntimeError as exc:
            if len(images) > 1:
                return [score for image in images for score in self.score_group([image])]
            return [Score.failure(f"{type(exc).__name__}: {exc}")]
        return [
            Score.ok(self.report(p)) if p == p else Score.failure("CLIP gave a non-finite similarity (NaN)")
            for p in probabilities
        ]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.clip.parameters())

    def input_resolution(self) -> str:
        return describe_resize(self.resize)

    def runtime_config(self) -> dict[str, Any]:
        return {"logit_scale": self.logit_scale}


class ClipIQA(ClipPairScorer):
    """CLIP-IQA (Wang et al., AAAI 2023): zero-shot P("Good photo.") against "Bad photo." from frozen CLIP.

    Scores are the probability itself, on [0, 1] (higher is better). With
    ``prompts="five-pairs"`` the probabilities of pyiqa's five antonym pairs
    are averaged.
    """

    name: ClassVar[str] = "clip-iqa"
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __init__(
        self,
        *,
        model_name: str = "RN50",
        pretrained: str | None = "openai",
        prompts: str | Sequence[Sequence[str]] = "good-bad",
        resize: ResizeOption = None,
        pos_embedding: bool = False,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        """
        Args:
            model_name: open_clip model name; CLIP-IQA uses OpenAI's ``RN50``.
            pretrained: open_clip pretrained tag, or a local weights file.
            prompts: ``"good-bad"`` (CLIP-IQA), ``"five-pairs"`` (pyiqa's variant), or a list of
                [positive, negative] caption pairs.
            resize: ``None`` for full resolution (CLIP-IQA), an int for the shorter side, or
                [height, width].
            pos_embedding: ResNet towers only: ``False`` drops the attention pool's positional
                embedding (CLIP-IQA), ``True`` resizes it bicubically along the flattened token
                sequence to the image's number of positions (CLIP-IQA's option, as released).
        """
        from iqabench_plugins.clipiqa.prompts import resolve_prompts

        super().__init__(device=device, dtype=dtype)
        self.prompts = resolve_prompts(prompts)
        self.setup_clip(model_name, pretrained, resize, pos_embedding)
        self.set_caption_features(self.encode_captions(self.prompts))

    @inference_mode
    def encode_captions(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        import open_clip

        tokenizer = open_clip.get_tokenizer(self.model_name)
        tokens = tokenizer([caption for pair in pairs for caption in pair]).to(self.device)
        return self.clip.encode_text(tokens).reshape(len(pairs), 2, -1)

    def runtime_config(self) -> dict[str, Any]:
        return {**super().runtime_config(), "native_range": [0.0, 1.0]}


class ClipIQAPlus(ClipPairScorer):
    """CLIP-IQA+: CLIP-IQA with a CoOp prompt context learned on MOS (frozen CLIP).

    Scores are reported on [1, 5] as ``1 + 4 * P("Good photo.")``, the
    probability mapped linearly onto iqabench's scale (rank and linear
    correlations are unchanged by it); the native range [0, 1] and the target
    the context was fitted to (the release's MOS / 100, or (mos - 1) / 4) are
    recorded in :meth:`config`.
    """

    name: ClassVar[str] = "clip-iqa+"
    score_range: ClassVar[tuple[float, float]] = (1.0, 5.0)
    trainer: ClassVar[str | None] = "coop"

    def __init__(
        self,
        *,
        checkpoint: str | None = None,
        model_name: str | None = None,
        pretrained: str | None = None,
        resize: ResizeOption = None,
        pos_embedding: bool | None = None,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        """
        Args:
            checkpoint: folder written by the ``coop`` trainer or by ``iqabench convert clip-iqa+``
                from the released context (required).
            model_name: open_clip model name; ``None`` takes the one the context was learned with.
            pretrained: open_clip tag or local weights file; ``None`` takes the checkpoint's (pass a
                local file here to use the same weights offline).
            resize: ``None`` for full resolution (CLIP-IQA+), an int for the shorter side, or
                [height, width].
            pos_embedding: ``None`` keeps the training setting; see :class:`ClipIQA`.
        """
        super().__init__(device=device, dtype=dtype)
        if checkpoint is None:
            raise IQABenchError(
                "clip-iqa+ needs a learned prompt context: train it with the `coop` trainer (a suite's train "
                "step does so) and pass its folder as checkpoint=/path/to/checkpoint."
            )
        from iqabench_plugins.clipiqa.checkpoint import load_context

        self.checkpoint = str(checkpoint)
        context, self.checkpoint_config = load_context(checkpoint)
        saved = self.checkpoint_config
        self.setup_clip(
            model_name or saved["model_name"],
            pretrained if pretrained is not None else saved["pretrained"],
            resize,
            saved["pos_embedding"] if pos_embedding is None else pos_embedding,
        )
        self.learner = build_prompt_learner(self.clip, self.model_name, saved["class_names"], saved["n_ctx"])
        if self.learner.context.shape != context.shape:
            raise IQABenchError(
                f"the context in {checkpoint} has shape {tuple(context.shape)} but {self.model_name!r} needs "
                f"{tuple(self.learner.context.shape)}; load it with the CLIP model it was trained with "
                f"({saved['model_name']!r})."
            )
        with torch.no_grad():
            self.learner.context.copy_(context)
            self.set_caption_features(self.learner().reshape(1, 2, -1))

    def report(self, probability: float) -> float:
        return 1.0 + 4.0 * probability

    def num_parameters(self) -> int:
        return super().num_parameters() + self.learner.context.numel()

    def runtime_config(self) -> dict[str, Any]:
        saved = self.checkpoint_config
        return {
            **super().runtime_config(),
            "class_names": list(saved["class_names"]),
            "n_ctx": saved["n_ctx"],
            "native_range": [0.0, 1.0],
            "reported_as": "1 + 4 * P(positive)",
            "target": saved.get("target"),
            "training": saved.get("provenance", {}),
        }


def build_prompt_learner(
    clip: torch.nn.Module,
    model_name: str,
    class_names: Sequence[str],
    n_ctx: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> PromptLearner:
    """CLIP-IQA+'s prompt learner on ``clip``; ``dtype`` sets the context's (the release's is CLIP's float16)."""
    import open_clip

    from iqabench_plugins.clipiqa.backbone import TextTower
    from iqabench_plugins.clipiqa.prompts import PromptLearner

    tokenizer = open_clip.get_tokenizer(model_name)
    learner = PromptLearner(TextTower(clip), tokenizer, class_names, n_ctx, generator=generator)
    if len(learner.class_names) != 2:
        raise IQABenchError(f"class_names={list(class_names)}: CLIP-IQA+ needs exactly [positive, negative].")
    if dtype is not None:
        learner.context.data = learner.context.data.to(dtype)
    return learner.to(next(clip.parameters()).device)

