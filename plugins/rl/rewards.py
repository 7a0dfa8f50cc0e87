"""Reward functions for GRPO on image quality, and the registry that names them.

A reward function scores the completions of one rollout batch::

    reward(texts, mos, groups, **options) -> list[float]

``texts`` are the completions, ``mos`` the ground truth of each completion's
image on [1, 5] and ``groups`` an id per completion: completions of the same
image share it. Rewards that compare images with each other (VisualQuality-R1's
fidelity reward) need the groups; the others ignore them. Keyword ``options``
(e.g. ``threshold``) come from the trainer's ``reward_options``.

Rewards are plugins: besides the built-in ones below, a package can add one
through the ``iqabench.rewards`` entry-point group (name = reward name, value =
the function), or a script can call :func:`register_reward`. Rewards parse
completions with the very parsers the scoring models use
(:mod:`iqabench_plugins.mllm.parsing`), so what is rewarded is what is scored.
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from iqabench.errors import DuplicateNameError, UnknownNameError, did_you_mean
from iqabench_plugins.mllm.parsing import parse_q_insight, parse_visualquality

ENTRY_POINT_GROUP = "iqabench.rewards"
RewardFunction = Callable[..., list[float]]

#: Q-Insight's score-reward threshold on the [1, 5] scale (``score_reward_threshold``)
Q_INSIGHT_THRESHOLD = 0.35

# Q-Insight's format: think block, answer block holding one flat JSON object, newlines between tags.
_Q_INSIGHT_FORMAT = re.compile(r"<think>\n.*?\n</think>\n<answer>\n\{[^{}]*\}\n</answer>", re.DOTALL)
# VisualQuality-R1's format: a think block then an answer block, any whitespace between.
_VISUALQUALITY_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def q_insight_score(
    texts: Sequence[str], mos: Sequence[float], groups: Sequence[str], *, threshold: float = Q_INSIGHT_THRESHOLD
) -> list[float]:
    """1 where the parsed rating is within ``threshold`` of the MOS (inclusive), else 0.

    The issue specifies ``|prediction - label| <= 0.35``; Q-Insight's code uses
    a strict ``<``. Ratings come with two decimals and labels are continuous,
    so the two differ only on a boundary of measure zero; we keep ``<=``.
    An unparsable completion earns 0.
    """
    rewards = []
    for text, label in zip(texts, mos, strict=True):
        parsed = parse_q_insight(text)
        rewards.append(1.0 if parsed.score is not None and abs(parsed.score - label) <= threshold else 0.0)
    return rewards


def q_insight_format(texts: Sequence[str], mos: Sequence[float], groups: Sequence[str]) -> list[float]:
    """1 where the whole completion is ``<think>\\n…\\n</think>\\n<answer>\\n{…}\\n</answer>``, else 0."""
    return [1.0 if _Q_INSIGHT_FORMAT.fullmatch(text) else 0.0 for text in texts]


def visualquality_format(texts: Sequence[str], mos: Sequence[float], groups: Sequence[str]) -> list[float]:
    """1 where the whole completion is ``<think>…</think>`` then ``<answer>…</answer>``, else 0."""
    return [1.0 if _VISUALQUALITY_FORMAT.fullmatch(text) else 0.0 for text in texts]


def visualquality_fidelity(
    texts: Sequence[str], mos: Sequence[float], groups: Sequence[str], *, epsilon: float = 1e-6
) -> list[float]:
    """VisualQuality-R1's Thurstone fidelity reward, averaged over the other images of the batch.

    For completion j of image i with predicted score p_ij, and every other image z:
    P = Φ((p_ij − μ_z) / sqrt(σ²_i + σ²_z + ε)), where μ and σ² are the mean and
    unbiased variance of an image's predicted scores over its completions;
    g = 1 if MOS_i > MOS_z, 0 if MOS_i < MOS_z, 0.5 if equal;
    reward = mean over z of sqrt(P·g + ε) + sqrt((1 − P)(1 − g) + ε).

    Choices where the paper's code is silent: an unparsable completion earns 0
    and is left out of its image's μ and σ²; an image with a single parsed
    prediction has σ² = 0; images with no parsed prediction are not compared
    against; a completion with no image to compare against earns 0.
    """
    predictions = [parse_visualquality(text).score for text in texts]
    by_group: dict[str, list[float]] = {}
    label_of: dict[str, float] = {}
    for prediction, label, group in zip(predictions, mos, groups, strict=True):
        label_of[group] = float(label)
        if prediction is not None:
            by_group.setdefault(group, []).append(prediction)
    moments = {
        group: (statistics.fmean(values), statistics.variance(values) if len(values) > 1 else 0.0)
        for group, values in by_group.items()
    }
    rewards = []
    for prediction, group in zip(predictions, groups):
        others = [z for z in moments if z != group]
        if prediction is None or group not in moments or not others:
            rewards.append(0.0)
            continue
        variance_i = moments[group][1]
        total = 0.0
        for other in others:
            mean_z, variance_z = moments[other]
            probability = _normal_cdf((prediction - mean_z) / math.sqrt(variance_i + variance_z + epsilon))
            target = _preference(label_of[group], label_of[other])
            total += math.sqrt(probability * target + epsilon) + math.sqrt(
                (1.0 - probability) * (1.0 - target) + epsilon
            )
        rewards.append(total / len(others))
    return rewards


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _preference(mos_i: float, mos_z: float) -> float:
    if mos_i > mos_z:
        return 1.0
    if mos_i < mos_z:
        return 0.0
    return 0.5


_BUILTIN: dict[str, RewardFunction] = {
    "q_insight_score": q_insight_score,
    "q_insight_format": q_insight_format,
    "visualquality_fidelity": visualquality_fidelity,
    "visualquality_format": visualquality_format,
}
_REGISTERED: dict[str, RewardFunction] = {}


def register_reward(name: str, function: RewardFunction) -> None:
    """Add a reward under ``name`` for this process (third-party packages use the entry-point group)."""
    if name in available_rewards():
        raise DuplicateNameError(f"reward {name!r} is already registered; choose another name.")
    _REGISTERED[name] = function


def available_rewards() -> dict[str, RewardFunction]:
    """Built-in, entry-point and registered rewards by name."""
    rewards = dict(_BUILTIN)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            rewards.setdefault(entry_point.name, entry_point.load())
        except Exception as exc:  # a broken third-party reward must not hide the others
            warnings.warn(f"reward plugin {entry_point.name!r} failed to import and is skipped: {exc}", stacklevel=2)
    rewards.update(_REGISTERED)
    return rewards


def get_reward(name: str) -> RewardFunction:
    """The reward called ``name``; an unknown name raises with the available and closest ones."""
    rewards = available_rewards()
    if name in rewards:
        return rewards[name]
    raise UnknownNameError(
        f"unknown reward {name!r}.{did_you_mean(name, rewards)} Available rewards: {', '.join(sorted(rewards))}. "
        f"A plugin adds one through the {ENTRY_POINT_GROUP!r} entry-point group."
    )
