"""The ``synthetic`` dataset: scikit-image's photographs under designed distortions.

A sanity benchmark, not a human-opinion one: each label is the severity the
generator designed (5 for the pristine reference, ``5 - 4 * level / 5`` for
levels 1..5), so a model that ranks these images well merely notices the
distortions, and a model that fails here has a bug or a blind spot. It needs
nothing but the installed packages, which makes it the dataset of the offline
quickstart.

The split is reference-disjoint: all versions of a reference are in the same
split, so a trained model is tested on photographs it has never seen. Every
record carries its ``distortion`` (type name and level; type None and level 0
for the pristine reference), which the degradation-perception task of the
``grpo`` trainer learns from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iqabench.api import Dataset, DatasetIndex, IQABenchError, build_index
from iqabench_plugins.synthetic.distortions import DISTORTIONS, JPEG2000_AVAILABLE
from iqabench_plugins.synthetic.generate import (
    DEFAULT_SIZE,
    LEVELS,
    MANIFEST,
    MIN_SIDE,
    default_root,
    ensure_generated,
    generation_folder,
    is_usable,
    read_manifest,
)
from iqabench_plugins.synthetic.references import REFERENCES


def expected_count(references: Sequence[str], distortions: Sequence[str]) -> int:
    """Images generated: one pristine per reference plus five levels of each applicable distortion."""
    per_reference = {
        name: sum(1 for d in distortions if REFERENCES[name].colour or not DISTORTIONS[d].needs_colour)
        for name in references
    }
    return sum(1 + LEVELS * n for n in per_reference.values())


def reference_split(references: Sequence[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Map each reference to "train" or "test": a seeded draw of ``round(n * test_fraction)`` test references."""
    names = sorted(references)
    if len(names) < 2:
        raise IQABenchError(
            f"the synthetic dataset needs at least 2 references for a reference-disjoint split, got {names}; "
            f"choose more with -o references=... (available: {', '.join(REFERENCES)})."
        )
    n_test = min(len(names) - 1, max(1, round(len(names) * test_fraction)))
    order = np.random.default_rng(seed).permutation(len(names))
    test = {names[i] for i in order[:n_test]}
    return {name: "test" if name in test else "train" for name in names}


def _names(value: str | Sequence[str] | None, available: dict, what: str) -> list[str]:
    """A subset given as a list or a comma-separated string, checked against the available names."""
    if value is None:
        return list(available)
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n) for n in value]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        hint = " (jpeg2000 needs Pillow built with OpenJPEG)" if "jpeg2000" in unknown else ""
        raise IQABenchError(
            f"synthetic dataset: unknown or no {what} {unknown or names}{hint}; choose from {', '.join(available)}."
        )
    return [n for n in available if n in names]


def _size(value: str | Sequence[int]) -> tuple[int, int]:
    try:
        parts = value.lower().split("x") if isinstance(value, str) else list(value)
        width, height = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise IQABenchError(f"synthetic dataset: size must be (width, height) or 'WxH', got {value!r}.") from None
    if min(width, height) < MIN_SIDE:
        raise IQABenchError(
            f"synthetic dataset: size {width}x{height} is too small; each side must be at least {MIN_SIDE} px "
            "so NIQE's two 96-pixel scales fit."
        )
    return width, height


class Synthetic(Dataset):
    """scikit-image photographs x 11 designed distortions x 5 levels; labels are designed severities (sanity check)."""

    name = "synthetic"
    title = "Synthetic"
    default_dir = "synthetic"
    homepage = "generated locally from the photographs bundled with scikit-image (docs/synthetic.md)"
    expected_files = (f"<width>x<height>/{MANIFEST}", "<width>x<height>/images/<reference>/<distortion>_<level>.png")
    official_count = expected_count(list(REFERENCES), list(DISTORTIONS))
    default_test_split = "test"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        size: str | Sequence[int] = DEFAULT_SIZE,
        seed: int = 0,
        test_fraction: float = 1 / 3,
        references: str | Sequence[str] | None = None,
        distortions: str | Sequence[str] | None = None,
    ) -> None:
        """Generated into ``root`` on first use (default ``$IQABENCH_DATA/synthetic``, else the user cache).

        ``seed`` and ``test_fraction`` choose which references are tested on; ``references`` and
        ``distortions`` restrict the dataset to subsets (names as in docs/synthetic.md).
        """
        super().__init__(root if root is not None else default_root())
        self.size = _size(size)
        self.seed = int(seed)
        if not 0.0 < float(test_fraction) < 1.0:
            raise IQABenchError(f"synthetic dataset: test_fraction must be between 0 and 1, got {test_fraction}.")
        self.test_fraction = float(test_fraction)
        self.references = _names(references, REFERENCES, "references")
        self.distortions = _names(distortions, DISTORTIONS, "distortions")

    def is_generated(self) -> bool:
        """Whether :meth:`load` finds its images ready, without generating them (``data check`` asks)."""
        assert self.root is not None
        folder = generation_folder(Path(self.root), self.size)
        return is_usable(folder, read_manifest(folder), self.references, self.distortions)

    def load(self) -> DatasetIndex:
        assert self.root is not None
        folder, manifest = ensure_generated(self.root, self.size, self.references, self.distortions)
        splits = reference_split(self.references, self.test_fraction, self.seed)
        wanted = set(self.distortions)
        rows = [
            {
                "image": f"{folder.name}/{entry['image']}",
                "mos_raw": entry["label"],
                "split": splits[entry["reference"]],
                "reference": entry["reference"],
                "distortion": {"type": entry["distortion"], "level": entry["level"]},
            }
            for entry in manifest["images"]
            if entry["reference"] in splits and (entry["distortion"] is None or entry["distortion"] in wanted)
        ]
        full = self.references == list(REFERENCES) and self.distortions == list(DISTORTIONS)
        notes = [
            "labels are designed severities (5 - 4 * level / 5, pristine = 5), not human opinions: "
            "a sanity benchmark",
            f"generated by iqabench's synthetic generator version {manifest['version']} at "
            f"{self.size[0]}x{self.size[1]}",
        ]
        if not JPEG2000_AVAILABLE:
            notes.append("JPEG 2000 left out: this Pillow has no OpenJPEG support")
        return build_index(
            self.name,
            Path(self.root),
            rows,
            label_files=[f"{folder.name}/{MANIFEST}"],
            nominal_range=(1.0, 5.0),
            direction="higher_better",
            split_source=(
                f"reference-disjoint random split of {len(self.references)} references "
                f"(seed {self.seed}, test_fraction {self.test_fraction:.3g})"
            ),
            official_count=self.official_count if full else None,
            notes=notes,
            rescale_range=(1.0, 5.0),
        )
