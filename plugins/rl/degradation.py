"""Q-Insight's second training task: degradation perception (distortion class and severity).

Q-Insight (Li et al., 2025; paper section 5.1) trains score regression and
degradation perception jointly. A degradation prompt shows an image with one
known synthetic distortion and asks, in JSON, for its class among ``noise``,
``compression``, ``blur`` and ``darken`` and its severity among five words
(``"null"`` for either when there is none). The reward gives 0.25 for the right
class and 0.75 more when the severity is right too (the paper's auxiliary
weights alpha1 = 0.25, alpha2 = 0.75).

Where degradation prompts come from:

* training datasets whose records carry a ``distortion`` (KADID-10k reads it
  from its file names, the ``synthetic`` dataset knows it), named in the
  ``grpo`` trainer's ``degradation_datasets``;
* ``degradation_data``: Q-Insight's own training data, a meta JSON in the
  layout its loader reads (objects with ``image``, ``distortion_class`` and
  ``severity``; the released set is KADIS-700K ``refA_sd_brief`` with
  ``metas/train_dist.json`` next to ``dist_imgs/``), or a folder of generated
  distortions named ``<reference>_<type>_<level>.<ext>`` as KADIS-700k's
  generation script writes them.

A meta JSON is read as the release reads it (bytedance/Q-Insight @08308fd,
``qinsight_multi_task.py``, ``LazySupervisedDataset.__getitem__`` and
``score_reward``): every entry is a prompt, and its ``distortion_class`` and
``severity`` are the expected answers exactly as the JSON holds them. The
reward compares the model's quoted strings with them by equality, so a JSON
``null`` never equals the model's ``"null"`` (such an image earns nothing from
this task, only the format reward), a class outside the four is kept and
rewarded when the model names it, and a numeric severity never matches. How
many entries are of each kind is reported, not changed.

For datasets whose records carry a distortion and for folders of generated
distortions (iqabench's own sources, not the release's), distortion types
outside the four classes (contrast, saturation, ...) have no answer in the
prompt's vocabulary and are left out; how many is reported.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError, TrainingSet
from iqabench_plugins.datasets.kadid10k import parse_distortion

#: Q-Insight's degradation question (bytedance/Q-Insight, ``qinsight_multi_task.py`` and ``demo_dist.py``), verbatim
DEGRADATION_QUESTION = (
    'Analyze the given image and determine if it contains any of the following distortions: "noise", '
    '"compression", "blur", or "darken". If a distortion is present, classify its severity as "slight", '
    '"moderate", "obvious", "serious", or "catastrophic". Return the result in JSON format with the following '
    'keys: "distortion_class": The detected distortion (or "null" if none). and "severity": The severity level '
    '(or "null" if none).'
)
#: the classes and severities the question names, severities mildest first (level 1 .. 5)
DISTORTION_CLASSES = ("noise", "compression", "blur", "darken")
SEVERITIES = ("slight", "moderate", "obvious", "serious", "catastrophic")
#: the answer for an image without distortion, as the question asks for it
NO_DISTORTION = "null"

#: distortion type names of KADID-10k / KADIS-700k, the synthetic dataset and DepictQA's generator -> class.
#: Grouped as DepictQA's generator (which made Q-Insight's KADIS-700K refA_sd_brief set) groups its own types:
#: every blur (jitter included), every additive/impulse/multiplicative noise, JPEG and JPEG 2000, darkening.
DEFAULT_DISTORTION_CLASSES: dict[str, str] = {
    # KADID-10k / KADIS-700k
    "gaussian_blur": "blur", "lens_blur": "blur", "motion_blur": "blur", "jitter": "blur",
    "white_noise": "noise", "white_noise_color_component": "noise", "impulse_noise": "noise",
    "multiplicative_noise": "noise", "jpeg": "compression", "jpeg2000": "compression", "darken": "darken",
    # the synthetic dataset (its "brightness" distortion darkens)
    "gaussian_noise": "noise", "brightness": "darken",
    # DepictQA's class names, as its metas give them
    "blur": "blur", "noise": "noise", "compression": "compression",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DegradationSample:
    """One degradation prompt: the image and the answer the reward expects (JSON values: str, None, a number)."""

    path: Path
    distortion_class: Any
    severity: Any
    image_id: str
    #: the training set's input resize as ``[shorter_side, max_side]`` (the suite's per-model inputs), or None
    resize: list[int | None] | None = None


def answer_for(distortion: Mapping[str, Any] | None, classes: Mapping[str, str]) -> tuple[str, str] | None:
    """The expected (class, severity) for a record's ``distortion``; None when the question has no answer for it."""
    if distortion is None:
        return None
    kind, level = distortion.get("type"), int(distortion.get("level") or 0)
    if kind is None and level == 0:
        return NO_DISTORTION, NO_DISTORTION
    if kind not in classes or not 1 <= level <= len(SEVERITIES):
        return None
    return classes[kind], SEVERITIES[level - 1]


def resize_pair(training_set: TrainingSet) -> list[int | None] | None:
    """The training set's input resize (the suite's per-model inputs) as ``[shorter_side, max_side]``, or None."""
    resize = getattr(training_set, "resize", None)
    if resize is None or not getattr(resize, "active", False):
        return None
    return [resize.shorter_side, resize.max_side]


def samples_from_records(training_set: TrainingSet, classes: Mapping[str, str]) -> tuple[list[DegradationSample], int]:
    """Degradation prompts from a dataset's records, and how many records had no answer in the vocabulary."""
    samples, left_out = [], 0
    resize = resize_pair(training_set)
    for record in training_set.records:
        answer = answer_for(record.distortion, classes)
        if answer is None:
            left_out += 1
            continue
        samples.append(DegradationSample(training_set.root / record.image, *answer,
                                         image_id=f"{training_set.name}/{record.image}", resize=resize))
    return samples, left_out


def resolve_data_path(value: str, search: Sequence[Path]) -> Path:
    """An absolute path as given; a relative one in the current folder, else under each folder of ``search``.

    ``search`` holds the parents of the training datasets' folders (the data
    root in the usual layout), so a suite can name ``kadis700k/...`` as it
    names datasets.
    """
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, *(folder / path for folder in search)]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise IQABenchError(
        f"degradation_data {value!r} not found (looked at {', '.join(str(c) for c in dict.fromkeys(candidates))}). "
        "Point it at Q-Insight's meta JSON (KADIS-700K refA_sd_brief/metas/train_dist.json) or at a folder of "
        "generated distortions named <reference>_<type>_<level>.<ext>, as an absolute path or relative to the "
        "data root."
    )


def read_degradation_data(path: Path, classes: Mapping[str, str]) -> tuple[list[DegradationSample], int | dict]:
    """Degradation prompts from a meta JSON or a folder of generated distortions.

    Also: for a folder, how many images were left out (a type outside the four classes); for a meta JSON, which
    entries were kept although the reward can never match them (see :func:`_from_meta`).
    """
    if path.is_dir():
        return _from_folder(path, classes)
    return _from_meta(path, classes)


def _from_folder(folder: Path, classes: Mapping[str, str]) -> tuple[list[DegradationSample], int]:
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    samples, left_out = [], 0
    for image in images:
        answer = answer_for(parse_distortion(image.name), classes)
        if answer is None:
            left_out += 1
            continue
        samples.append(DegradationSample(image, *answer, image_id=f"degradation/{image.relative_to(folder)}"))
    if not samples:
        raise IQABenchError(
            f"{folder} holds no image named <reference>_<type>_<level>.<ext> with a distortion of the classes "
            f"{', '.join(DISTORTION_CLASSES)} ({len(images)} images looked at); it is not a KADIS-700k-style folder "
            "of generated distortions."
        )
    return samples, left_out


def _from_meta(path: Path, classes: Mapping[str, str]) -> tuple[list[DegradationSample], dict[str, int]]:
    """Q-Insight's loader: ``image`` joined to an image root, ``distortion_class`` and ``severity`` as answers.

    Every entry is kept with its answers exactly as the JSON holds them (see the module docstring); the second
    value counts the entries whose answer the reward can never match (``null`` class or severity, a severity
    that is not a string) and those whose class is outside the question's four. ``classes`` is not used: the
    release maps nothing.

    The image root is the folder above ``metas/`` (``refA_sd_brief/`` in the
    released layout); an ``image`` not found there is looked for next to the JSON,
    then in the folders further up (Q-Insight's script joins it to the data root,
    ``--image_root ./data/Data-DeQA-Score``, three levels above the JSON). An image found nowhere is an error
    (the release silently draws another entry instead).
    """
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IQABenchError(f"degradation_data {path} is not a readable JSON file ({exc}).") from None
    if not isinstance(entries, list):
        raise IQABenchError(f"degradation_data {path} must hold a JSON list of objects with image, distortion_class "
                            "and severity (Q-Insight's train_dist.json layout).")
    roots = [path.parent.parent, path.parent, *list(path.resolve().parents)[2:5]]
    samples = []
    kinds = {"unmatchable_answer": 0, "class_outside_the_four": 0}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry:
            raise IQABenchError(f"entry {position} of {path} has no `image`: {str(entry)[:120]}")
        distortion_class, severity = entry.get("distortion_class"), entry.get("severity")
        if not isinstance(distortion_class, str) or not isinstance(severity, str):
            kinds["unmatchable_answer"] += 1
        elif distortion_class not in (*DISTORTION_CLASSES, NO_DISTORTION):
            kinds["class_outside_the_four"] += 1
        image = Path(entry["image"])
        found = image if image.is_absolute() else next((r / image for r in roots if (r / image).is_file()), None)
        if found is None:
            raise IQABenchError(
                f"image {entry['image']!r} of {path} (entry {position}) is under none of "
                f"{', '.join(str(r) for r in roots)}; keep the release's layout (metas/train_dist.json next to "
                "dist_imgs/, under the data root)."
            )
        samples.append(DegradationSample(found, distortion_class, severity, image_id=f"degradation/{entry['image']}"))
    if not samples:
        raise IQABenchError(f"{path} holds no entry.")
    return samples, kinds


def mix(
    samples: Sequence[DegradationSample], score_prompts: int, ratio: float | None, seed: int
) -> list[DegradationSample]:
    """The degradation prompts of the training set, drawn once for the whole run (every epoch sees the same ones).

    ``ratio=None`` keeps every sample (Q-Insight concatenates the two tasks'
    data). A ratio r in (0, 1) makes degradation prompts a fraction r of all
    prompts: round(r / (1 - r) * score_prompts) of them, a seeded subsample,
    or whole copies plus a subsample when there are fewer.
    """
    if ratio is None or not samples:
        return list(samples)
    wanted = round(ratio / (1.0 - ratio) * score_prompts)
    copies, remainder = divmod(wanted, len(samples))
    return list(samples) * copies + random.Random(seed).sample(list(samples), remainder)


def check_ratio(ratio: float | None) -> None:
    if ratio is not None and not (0.0 < ratio < 1.0 and math.isfinite(ratio)):
        raise IQABenchError(
            f"degradation_ratio={ratio}: give the fraction of degradation prompts among all prompts, strictly "
            "between 0 and 1, or null to use every prompt of both tasks (as Q-Insight does)."
        )
