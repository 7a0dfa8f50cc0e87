"""A model's scores mapped onto [0, 1], higher is better: the one map of rewards and losses.

Min-max over the model's documented ``score_range``, flipped when lower is
better, so that any model can replace any other without retuning a reward
scale. Losses keep the linear map beyond the range (``clamp=False``) so that
gradients are not cut off; rewards clip to [0, 1]. NaN (an unscored image)
stays NaN.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from iqabench.errors import IQABenchError

if TYPE_CHECKING:
    import numpy as np
    import torch

    Scores = torch.Tensor | np.ndarray | Sequence[float] | float
    Reward = torch.Tensor | np.ndarray | list[float] | float
else:
    Scores = Reward = Any


def to_reward(scores: Scores, score_range: tuple[float, float], lower_better: bool, *, clamp: bool = True) -> Reward:
    """``(s - low) / (high - low)``, then ``1 - x`` when lower is better, then clipped to [0, 1] if ``clamp``.

    ``scores`` may be a tensor (the map is differentiable and keeps its device and dtype), a numpy array, a list
    or tuple of numbers, or one number; the reward is of the same kind (a list for a list or tuple, a float for
    a number). Anything else is an error saying what is accepted.
    """
    low, high = (float(v) for v in score_range)

    def mapped(values: Any) -> Any:
        reward = (values - low) / (high - low)
        if lower_better:
            reward = 1.0 - reward
        return reward

    import sys

    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    if torch is not None and isinstance(scores, torch.Tensor):
        if not (scores.is_floating_point() or scores.dtype in (torch.int32, torch.int64, torch.uint8)):
            raise IQABenchError(f"to_reward takes numeric scores, got a tensor of {scores.dtype}.")
        reward = mapped(scores if scores.is_floating_point() else scores.float())
        return reward.clamp(0.0, 1.0) if clamp else reward
    import numpy as np

    if isinstance(scores, numbers.Real) and not isinstance(scores, bool):
        value = float(mapped(float(scores)))
        return min(max(value, 0.0), 1.0) if clamp and value == value else value
    if isinstance(scores, (np.ndarray, list, tuple)):
        try:
            values = np.asarray(scores)
        except ValueError as exc:  # ragged nested lists
            raise IQABenchError(f"to_reward takes a flat list of numbers: {exc}.") from None
        if values.dtype.kind not in "fiu":
            raise IQABenchError(
                f"to_reward takes numbers; this {type(scores).__name__} holds {values.dtype} values "
                "(None, text or yes/no values are not scores)."
            )
        reward = mapped(values.astype(np.float64))
        if clamp:
            reward = np.clip(reward, 0.0, 1.0)  # NaN stays NaN
        return reward if isinstance(scores, np.ndarray) else reward.tolist()
    raise IQABenchError(
        f"to_reward takes scores as a tensor, a numpy array, a list of numbers or one number; got "
        f"{type(scores).__name__}."
    )
