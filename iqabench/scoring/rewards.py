"""IQA models as rewards for reinforcement learning of generators.

Rewards are the model's scores mapped to "higher is better" on [0, 1]
(:func:`iqabench.scoring.scale.to_reward`: min-max over the model's score range,
flipped when lower is better, clipped to [0, 1]), so that any model can
replace any other without retuning a reward scale. An image that cannot be
scored gets no reward (NaN, or ``None`` for trl), never a stand-in value; the
reasons for the latest batch are in the scorer's ``last_errors``.

Both adapters take what ``iqabench.create_model`` returns (a plugin's
``Model`` is wrapped the same way).

Two calling conventions:

* :class:`ImageReward`, ``reward(images, prompts) -> rewards``, for
  image-generation loops (DDPO-style policy gradients, or reward
  backpropagation: DRaFT, AlignProp, ReFL), taking a ``[B, 3, H, W]`` tensor
  in [0, 1], PIL images or numpy arrays. With a differentiable model and
  images that require grad, the rewards keep the graph back to the pixels.
* :class:`GRPOReward`, the reward-function signature of trl's ``GRPOTrainer``
  (trl 1.16 calls ``reward(prompts=..., completions=..., completion_ids=...,
  trainer_state=..., log_extra=..., log_metric=..., **dataset_columns)`` and
  reads one float or ``None`` per completion). The policy writes text, so the
  adapter takes a function that turns each completion into an image (a
  text-to-image pipeline run on a rewritten prompt, a rendered SVG...).

torch is imported inside the methods: ``import iqabench`` does not need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from iqabench.contracts.model import Model
from iqabench.errors import IQABenchError, NotDifferentiableError
from iqabench.scoring.scorer import Scorer, plugin_model

if TYPE_CHECKING:
    import torch

    from iqabench.scoring.inputs import Inputs


class ImageReward:
    """``reward(images, prompts=None) -> rewards``: one reward on [0, 1] per image, NaN for an unscored one.

    ``images`` is a ``[B, 3, H, W]`` tensor in [0, 1] (a generator's output,
    on any device: it is moved to the model's device in chunks of
    ``batch_size`` and the rewards come back on the images' device), or a list
    of PIL images or numpy arrays (rewards on the CPU). ``prompts`` are
    accepted for the loops that pass them, checked for length, and not used:
    a no-reference IQA model judges the image alone.

    Gradients: with ``differentiable=None`` (default) the rewards keep the
    graph when the model is differentiable, the images are a tensor that
    requires grad and grad mode is on; ``True`` insists (an error for a model
    without gradients), ``False`` never keeps it. With the graph kept, a batch
    the model cannot score raises instead of giving NaN, and the rewards are
    not clipped (the differentiable models' scores lie inside their range by
    construction: probabilities, expected levels, convex combinations of
    prototype scores).
    """

    def __init__(self, model: Scorer | Model, *, batch_size: int = 16, differentiable: bool | None = None) -> None:
        if batch_size < 1:
            raise IQABenchError(f"batch size must be a positive integer, got {batch_size}.")
        self.model = model if isinstance(model, Scorer) else Scorer(plugin_model(model))
        if differentiable and not self.model.differentiable:
            raise NotDifferentiableError(self.model.name)
        self.batch_size = batch_size
        self.differentiable = differentiable

    def __call__(self, images: Inputs, prompts: Sequence[Any] | None = None) -> torch.Tensor:
        import torch

        if prompts is not None and hasattr(images, "__len__") and len(prompts) != len(images):
            raise IQABenchError(f"{len(images)} images but {len(prompts)} prompts; pass one prompt per image.")
        if self._keeps_graph(images):
            from iqabench.scoring.pixels import as_pixel_batch

            model = self.model.model
            pixels = as_pixel_batch(images, check_range=False)
            scores = torch.cat([model.score_pixels(chunk.to(model.device)) for chunk in pixels.split(self.batch_size)])
            return self.model.to_reward(scores, clamp=False).to(pixels.device)
        return self.model.to_reward(self.model(images, batch_size=self.batch_size))

    def _keeps_graph(self, images: Any) -> bool:
        import torch

        if self.differentiable is False or not isinstance(images, torch.Tensor):
            if self.differentiable and not isinstance(images, torch.Tensor):
                raise IQABenchError("differentiable rewards need the images as a [B, 3, H, W] tensor.")
            return False
        if self.differentiable:
            return True
        return self.model.differentiable and images.requires_grad and torch.is_grad_enabled()


class GRPOReward:
    """A trl ``GRPOTrainer`` reward function: completions -> images (your ``images`` function) -> rewards.

    ``images(prompts=..., completions=..., **columns)`` receives everything trl
    passes (the dataset's columns included) and returns one image per
    completion: a PIL image, a numpy array, a ``[3, H, W]`` tensor in [0, 1],
    or ``None`` where no image could be made. The reward is the model's score
    mapped onto [0, 1]; ``None`` where there is no image or no score, which trl
    leaves out of that completion's sum of rewards. When trl passes
    ``log_metric``, the share of completions without a reward is logged as
    ``<name>/unscored``. ``name`` (default ``iqa_<model>``) is the reward's
    column in trl's logs.
    """

    def __init__(self, model: Scorer | Model, images: Callable[..., Sequence[Any]], *, batch_size: int = 16,
                 name: str | None = None) -> None:
        if batch_size < 1:
            raise IQABenchError(f"batch size must be a positive integer, got {batch_size}.")
        self.model = model if isinstance(model, Scorer) else Scorer(plugin_model(model))
        self.images = images
        self.batch_size = batch_size
        self.__name__ = name or f"iqa_{self.model.name}"

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        made = list(self.images(prompts=prompts, completions=completions, **kwargs))
        if len(made) != len(completions):
            raise IQABenchError(
                f"{self.__name__}: the images function returned {len(made)} images for {len(completions)} "
                "completions; return one per completion (None where there is none)."
            )
        present = [index for index, image in enumerate(made) if image is not None]
        rewards: list[float | None] = [None] * len(made)
        if present:
            values = self.model.to_reward(self.model([made[i] for i in present], batch_size=self.batch_size))
            for index, value in zip(present, values.tolist(), strict=True):
                rewards[index] = None if math.isnan(value) else float(value)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and rewards:
            log_metric(f"{self.__name__}/unscored", sum(r is None for r in rewards) / len(rewards))
        return rewards
