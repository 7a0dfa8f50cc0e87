"""A differentiable IQA model as a loss: ``create_model(name, as_loss=True)``.

The loss of a batch is ``1 - reward``: the model's scores mapped to "higher is
better" on [0, 1] by :meth:`~iqabench.contracts.model.Model.to_reward` (min-max over
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

from iqabench.errors import IQABenchError
from iqabench.registry.factory import not_differentiable
from iqabench.contracts.model import Model

Reduction = Literal["mean", "sum", "none"]


class QualityLoss(nn.Module):
    """``1 - to_reward(model.score_pixels(x))`` for pixels ``x`` ``[B, 3, H, W]`` in [0, 1]; gradients reach ``x``."""

    def __init__(self, model: Model, reduction: Reduction = "mean") -> None:
        super().__init__()
        if not model.differentiable:
            raise not_differentiable(model)
        if reduction not in ("mean", "sum", "none"):
            raise IQABenchError(f"reduction {reduction!r} is not one of mean, sum, none.")
        object.__setattr__(self, "model", model)  # held, not a sub-module (see the module docstring)
        self.reduction = reduction

    def scores(self, pixels: torch.Tensor) -> torch.Tensor:
        """The model's scores ``[B]`` on its own scale, differentiable with respect to ``pixels``."""
        from iqabench.scoring.pixels import as_pixel_batch

        pixels = as_pixel_batch(pixels, check_range=False)
        return self.model.score_pixels(pixels.to(self.model.device))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        loss = 1.0 - self.model.to_reward(self.scores(pixels), clamp=False)
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()

    def extra_repr(self) -> str:
        return f"model={self.model.name!r}, reduction={self.reduction!r}"

