"""A differentiable IQA model as a loss: ``create_model(name, as_loss=True)``.

The loss of a batch is ``1 - reward``: the model's scores mapped to "higher is
better" on [0, 1] by :func:`~iqabench.scoring.scale.to_reward` (min-max over
its score range, flipped when lower is better), without clipping so gradients
are not cut off at the ends of the range. Minimising it raises the quality the
model sees, whatever its direction and scale, and losses of different models
are on the same footing. :meth:`QualityLoss.scores` gives the raw scores with
their gradients.

The model's own networks are frozen and stay in eval mode: they are held by
the loss, not registered as its sub-modules, so ``loss.parameters()`` is empty
(nothing for an optimiser to pick up by mistake) and a ``.train()`` on a
network that contains the loss does not switch on dropout or batch-norm
updates in the IQA model. Its device is the one given to ``create_model``.

This module imports torch when it is imported; :func:`iqabench.create_model`
imports it only for ``as_loss=True``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from iqabench.contracts.model import Model
from iqabench.errors import IQABenchError, NotDifferentiableError
from iqabench.scoring.scale import to_reward

Reduction = Literal["mean", "sum", "none"]


class QualityLoss(nn.Module):
    """``1 - to_reward(model.score_pixels(x))`` for pixels ``x`` ``[B, 3, H, W]`` in [0, 1]; gradients reach ``x``."""

    def __init__(self, model: Model, reduction: Reduction = "mean") -> None:
        super().__init__()
        if not isinstance(model, Model):  # what create_model returned: the Scorer holds the model
            if not isinstance(getattr(model, "model", None), Model):
                raise IQABenchError(
                    f"QualityLoss takes a model from iqabench.create_model, got {type(model).__name__}."
                )
            model = model.model
        if not model.traits.differentiable:
            raise NotDifferentiableError(model.name)
        if reduction not in ("mean", "sum", "none"):
            raise IQABenchError(f"reduction {reduction!r} is not one of mean, sum, none.")
        object.__setattr__(self, "model", model)  # held, not a sub-module (see the module docstring)
        self.reduction = reduction

    def scores(self, pixels: torch.Tensor) -> torch.Tensor:
        """The model's scores ``[B]`` on its own scale, differentiable with respect to ``pixels``.

        The pixels follow the input contract of the tensor path (:func:`iqabench.scoring.pixels.as_pixel_batch`)
        except the [0, 1] range, which an optimiser may step slightly outside; NaN and infinite values are refused.
        """
        from iqabench.scoring.pixels import as_pixel_batch

        pixels = as_pixel_batch(pixels, check_range=False)
        return self.model.score_pixels(pixels.to(self.model.device))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        model = self.model
        loss = 1.0 - to_reward(self.scores(pixels), model.score_range, model.lower_better, clamp=False)
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()

    def extra_repr(self) -> str:
        return f"model={self.model.name!r}, reduction={self.reduction!r}"

