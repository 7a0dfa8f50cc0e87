"""What ``create_model`` returns: a registered model as users call it.

The plugin contract (:class:`iqabench.contracts.model.Model`) says how a model
scores prepared batches; this class is the user API on top of it, the split
pyiqa makes between a registered architecture and its ``InferenceModel``:

* ``scorer(inputs)`` scores what a user holds (file paths, PIL images, numpy
  arrays, tensors; :mod:`iqabench.scoring.inputs` says how each is checked) and
  returns a float tensor, NaN where an image could not be scored;
* :attr:`Scorer.last_errors` and :attr:`Scorer.last_scores` say why;
* :meth:`Scorer.to_reward` maps scores onto [0, 1], higher is better;
* :meth:`Scorer.as_loss` gives the differentiable models as a loss.

``scorer.model`` is the plugin object, for what only the contract has
(``config()``, ``timing_stages()``, the plugin's own attributes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iqabench.contracts.model import Model, Score
from iqabench.errors import IQABenchError, NotDifferentiableError
from iqabench.scoring.scale import Reward, Scores, to_reward

if TYPE_CHECKING:
    import torch

    from iqabench.scoring.inputs import Inputs
    from iqabench.scoring.loss import QualityLoss, Reduction


class Scorer:
    """A model as users call it: ``scorer(inputs) -> tensor of scores``. Made by ``iqabench.create_model``."""

    __slots__ = ("model", "last_scores")

    def __init__(self, model: Model) -> None:
        if not isinstance(model, Model):
            raise IQABenchError(f"a Scorer wraps an iqabench Model, got {type(model).__name__}.")
        #: the registered plugin object
        self.model = model
        #: per image of the previous call, the full outcome (value, error, and the text of a reasoning model)
        self.last_scores: list[Score] = []

    # -- what the scale is
    @property
    def name(self) -> str:
        return self.model.name

    @property
    def score_range(self) -> tuple[float, float]:
        return self.model.score_range

    @property
    def lower_better(self) -> bool:
        return self.model.lower_better

    @property
    def differentiable(self) -> bool:
        """Whether this model, with its options, is a loss (its tensor path has gradients)."""
        return self.model.traits.differentiable

    @property
    def device(self) -> str:
        return str(self.model.device)

    def config(self) -> dict[str, Any]:
        """The settings that determine the scores, as results record them."""
        return self.model.config()

    # -- scoring
    def __call__(self, inputs: Inputs, *, batch_size: int = 8, num_workers: int = 0) -> torch.Tensor:
        """Scores of what a user holds, as a float32 tensor: NaN for an image that could not be scored.

        ``inputs``: image file paths (one, or a list), PIL images, numpy arrays or tensors, checked as
        ``docs/api.md`` says (one contract for every form: shapes, uint8 or float in [0, 1], no NaN). Tensors
        and float arrays go through the model's tensor path where it has one (the result is then on the input
        tensor's device); everything else is scored as 8-bit RGB images through the model's preprocessor, files
        decoded by ``num_workers`` worker processes. No gradient is kept: for that use :meth:`as_loss`.
        """
        from iqabench.scoring.inputs import score_inputs, scores_to_tensor

        scores, device = score_inputs(self.model, inputs, batch_size=batch_size, num_workers=num_workers)
        self.last_scores = scores
        return scores_to_tensor(scores, device)

    @property
    def last_errors(self) -> list[str | None]:
        """Per image of the previous call: why it has no score, or ``None`` when it has one."""
        return [score.error for score in self.last_scores]

    def to_reward(self, scores: Scores, *, clamp: bool = True) -> Reward:
        """Scores mapped to "higher is better" on [0, 1] (see :func:`iqabench.scoring.scale.to_reward`).

        Takes a tensor (differentiable), a numpy array, a list of numbers or one number, and gives back the same
        kind.
        """
        return to_reward(scores, self.score_range, self.lower_better, clamp=clamp)

    def as_loss(self, reduction: Reduction = "mean") -> QualityLoss:
        """This model as an ``nn.Module`` loss, ``1 - reward`` of the pixels; an error if it is not differentiable."""
        if not self.differentiable:
            raise NotDifferentiableError(self.name)
        from iqabench.scoring.loss import QualityLoss

        return QualityLoss(self.model, reduction=reduction)

    def __getattr__(self, name: str) -> Any:  # only for names a Scorer does not have
        model = None if name in Scorer.__slots__ else getattr(self, "model", None)
        if model is not None and not name.startswith("_") and hasattr(model, name):
            raise AttributeError(
                f"a Scorer has no attribute {name!r}; the registered model has it: scorer.model.{name}"
            )
        raise AttributeError(f"'Scorer' object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"Scorer({self.name!r}, device={self.device!r})"


def plugin_model(model: Model | Scorer) -> Model:
    """The registered model behind what ``create_model`` returned (or the model itself)."""
    if isinstance(model, Scorer):
        return model.model
    if isinstance(model, Model):
        return model
    raise IQABenchError(f"expected a model from iqabench.create_model, got {type(model).__name__}.")
