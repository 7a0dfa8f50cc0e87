"""Reward functions for GRPO on image quality, and the registry that names them.

A reward function scores the completions of one rollout batch::

    reward(texts, labels, groups, **options) -> list[float]

``texts`` are the completions, ``labels`` the ground truth of each
completion's prompt and ``groups`` an id per completion: completions of the
same image share it. For the score task a label is the image's MOS on [1, 5];
for the degradation task it is ``{"distortion_class": ..., "severity": ...}``.
Rewards that compare images with each other (VisualQuality-R1's fidelity
reward) need the groups; the others ignore them. Keyword ``options`` (e.g.
``threshold``) come from the trainer's ``reward_options``.

A reward applies to the tasks named in its ``tasks`` attribute (default: the
score task only); the trainer calls it on those completions and gives the
others no value from it (trl sums the rewards that have one), so Q-Insight's
single accuracy function over both tasks is ``q_insight_score`` plus
``q_insight_degradation``.

The Q-Insight rewards follow its released ``qinsight_multi_task.py`` exactly:
the same regular expressions, the same strict threshold; see docs/fidelity.md.

Rewards are plugins: besides the built-in ones below, a package can add one
through the ``iqabench.scoring.rewards`` entry-point group (name = reward name, value =
the function), or a script can call :func:`register_reward`.
"""

from __future__ import annotations

import math
import random
import re
import statistics
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from iqabench.api import DuplicateNameError, UnknownNameError, did_you_mean

ENTRY_POINT_GROUP = "iqabench.scoring.rewards"
RewardFunction = Callable[..., list[float]]
TASKS = ("score", "degradation")

#: Q-Insight's score-reward threshold on the [1, 5] scale (``score_reward_threshold``)
Q_INSIGHT_THRESHOLD = 0.35
#: Q-Insight's degradation reward: this much for the right class, this much more if the severity is right too
#: (the paper's auxiliary weights alpha1 and alpha2, section 5.1)
Q_INSIGHT_CLASS_WEIGHT = 0.25
Q_INSIGHT_SEVERITY_WEIGHT = 0.75

# Q-Insight's patterns (qinsight_multi_task.py): the first answer block, then the first "rating" number in it
_Q_INSIGHT_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_Q_INSIGHT_RATING = re.compile(r'"rating"\s*:\s*([\d\.]+)')
_Q_INSIGHT_DEGRADATION = re.compile(r'"distortion_class"\s*:\s*"([^"]+)".*?"severity"\s*:\s*"([^"]+)"', re.DOTALL)
# Q-Insight's format: think block, answer block holding one flat JSON object; whitespace around the tags allowed
_Q_INSIGHT_FORMAT = re.compile(
    r"^<think>\s*\n.*?\n\s*</think>\s*\n<answer>\s*\n\{[^\{\}]*\}\s*\n\s*</answer>\s*$",
    re.DOTALL | re.MULTILINE,
)
# VisualQuality-R1's format: a think block then an answer block, any whitespace between.
_VISUALQUALITY_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def _q_insight_answer(text: str) -> str | None:
    match = _Q_INSIGHT_ANSWER.search(text)
    return match.group(1).strip() if match else None


def q_insight_score(
    texts: Sequence[str], mos: Sequence[float], groups: Sequence[str], *, threshold: float = Q_INSIGHT_THRESHOLD
) -> list[float]:
    """1 where the rating is strictly within ``threshold`` of the MOS, else 0 (Q-Insight's ``score_reward``).

    The rating is the first ``"rating": <digits and dots>`` of the first
    ``<answer>...</answer>`` block; one that is not a number (``"3.5.1"``)
    earns 0, as in the release. This is stricter than the ``q-insight`` model's
    parser, which accepts unclosed tags and unquoted keys when scoring.
    """
    rewards = []
    for text, label in zip(texts, mos, strict=True):
        answer = _q_insight_answer(text)
        match = _Q_INSIGHT_RATING.search(answer) if answer is not None else None
        try:
            rating = float(match.group(1)) if match else None
        except ValueError:
            rating = None
        rewards.append(1.0 if rating is not None and abs(rating - label) < threshold else 0.0)
    return rewards


def q_insight_degradation(
    texts: Sequence[str],
    answers: Sequence[dict[str, str]],
    groups: Sequence[str],
    *,
    class_weight: float = Q_INSIGHT_CLASS_WEIGHT,
    severity_weight: float = Q_INSIGHT_SEVERITY_WEIGHT,
) -> list[float]:
    """``class_weight`` for the right distortion class, plus ``severity_weight`` if the severity is right too.

    Both are read from the first ``<answer>`` block as quoted JSON strings
    (``"distortion_class": "blur", ... "severity": "moderate"``) and compared
    exactly with the expected answer; a right severity with a wrong class earns 0.
    """
    rewards = []
    for text, expected in zip(texts, answers, strict=True):
        answer = _q_insight_answer(text)
        match = _Q_INSIGHT_DEGRADATION.search(answer) if answer is not None else None
        reward = 0.0
        if match and match.group(1).strip() == expected["distortion_class"]:
            reward = class_weight
            if match.group(2).strip() == expected["severity"]:
                reward += severity_weight
        rewards.append(reward)
    return rewards


def q_insight_format(texts: Sequence[str], labels: Sequence[Any], groups: Sequence[str]) -> list[float]:
    """1 where the whole completion matches Q-Insight's ``format_reward`` pattern, else 0.

    ``<think>``, a newline, the reasoning, a newline, ``</think>``, a newline,
    ``<answer>``, a newline, one JSON object without nested braces, a newline,
    ``</answer>``; extra whitespace (blank lines, trailing spaces, indented
    closing tags, a final newline) is accepted where the release accepts it.
    """
    return [1.0 if _Q_INSIGHT_FORMAT.fullmatch(text) else 0.0 for text in texts]


def visualquality_format(texts: Sequence[str], mos: Sequence[float], groups: Sequence[str]) -> list[float]:
    """1 where the whole completion is ``<think>…</think>`` then ``<answer>…</answer>``, else 0."""
    return [1.0 if _VISUALQUALITY_FORMAT.fullmatch(text) else 0.0 for text in texts]


#: VisualQuality-R1's answer extraction (``grpo_jsonl.py``): the last answer block, else the whole completion,
#: then its first number, sign included
_VISUALQUALITY_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_VISUALQUALITY_NUMBER = re.compile(r"-?\d+(\.\d+)?")
#: what the release does with a completion that holds no number, and iqabench's stricter alternatives
UNPARSABLE = ("random", "exclude")
NEGATIVE = ("keep", "fail")


def visualquality_prediction(text: str, *, negative: str = "keep") -> float | None:
    """The number VisualQuality-R1's reward reads from a completion, or None when it holds none.

    The release (``grpo_jsonl.py``, ``accuracy_reward`` and ``extract_first_number``) takes the last
    ``<answer>...</answer>`` block, or the whole stripped completion when there is none, and its first match of
    ``-?\\d+(\\.\\d+)?``: a negative number is kept. ``negative="fail"`` treats one as unparsable instead.
    """
    answers = _VISUALQUALITY_ANSWER.findall(text)
    answer = answers[-1].strip() if answers else text.strip()
    match = _VISUALQUALITY_NUMBER.search(answer)
    if match is None:
        return None
    value = float(match.group())
    return None if value < 0 and negative == "fail" else value


def visualquality_fidelity(
    texts: Sequence[str],
    mos: Sequence[float],
    groups: Sequence[str],
    *,
    epsilon: float = 1e-6,
    unparsable: str = "random",
    negative: str = "keep",
    rng: random.Random | None = None,
) -> list[float]:
    """VisualQuality-R1's Thurstone fidelity reward, averaged over the other images of the batch.

    For completion j of image i with predicted score p_ij, and every other image z of the call:
    P = Φ((p_ij − μ_z) / sqrt(σ²_i + σ²_z + ε)), where μ and σ² are the mean and unbiased variance of an image's
    predicted scores over its completions; g = 1 if MOS_i > MOS_z, 0 if MOS_i < MOS_z, 0.5 if equal;
    reward = mean over z of sqrt(P·g + ε) + sqrt((1 − P)(1 − g) + ε).

    The defaults are the release's (``grpo_jsonl.py``): a completion holding no number gets the substitute
    ``random.randint(1, 5)`` as its prediction, which enters its image's μ and σ² like any other (this one random
    value is allowed only here, inside a training reward that reproduces the release; no score a model reports is
    ever made up); a negative number is kept. The deviations, as options: ``unparsable="exclude"`` gives such a
    completion 0 and leaves it out of μ and σ² (an image with no parsed prediction is then not compared against);
    ``negative="fail"`` treats a negative number as unparsable. ``rng`` draws the substitutes (the ``grpo``
    trainer passes one seeded with the run's seed; the release draws from Python's global generator). Each call
    is one comparison batch: the ``grpo`` trainer calls it once
    per block of images (``reward_batch_images``) as the release calls it once per GPU batch.
    """
    if unparsable not in UNPARSABLE:
        raise ValueError(f"unparsable={unparsable!r}: choose one of {', '.join(UNPARSABLE)}")
    if negative not in NEGATIVE:
        raise ValueError(f"negative={negative!r}: choose one of {', '.join(NEGATIVE)}")
    draw = rng if rng is not None else _SUBSTITUTES
    predictions = [visualquality_prediction(text, negative=negative) for text in texts]
    if unparsable == "random":
        predictions = [float(draw.randint(1, 5)) if p is None else p for p in predictions]
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


#: the substitutes' generator when the caller passes none
_SUBSTITUTES = random.Random(0)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _preference(mos_i: float, mos_z: float) -> float:
    if mos_i > mos_z:
        return 1.0
    if mos_i < mos_z:
        return 0.0
    return 0.5


q_insight_score.tasks = ("score",)  # type: ignore[attr-defined]
q_insight_degradation.tasks = ("degradation",)  # type: ignore[attr-defined]
q_insight_format.tasks = TASKS  # type: ignore[attr-defined]


def reward_tasks(function: RewardFunction) -> tuple[str, ...]:
    """The tasks a reward applies to: its ``tasks`` attribute, else the score task."""
    return tuple(getattr(function, "tasks", ("score",)))


_BUILTIN: dict[str, RewardFunction] = {
    "q_insight_score": q_insight_score,
    "q_insight_degradation": q_insight_degradation,
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
