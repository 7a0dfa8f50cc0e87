"""The contract every IQA dataset plugin fulfils, and MOS rescaling.

A dataset plugin reads its official label files (or a DeQA-Score meta JSON)
and returns a :class:`DatasetIndex`: one :class:`Record` per image plus the
:class:`Provenance` that says where every number came from. Scores are kept
raw and rescaled to [1, 5] by min-max over the whole dataset as observed (all
splits together), the convention of DeQA-Score and VisualQuality-R1; DMOS
datasets are flipped so that higher is always better.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from iqabench.errors import DatasetNotFoundError, IQABenchError

Direction = Literal["higher_better", "lower_better"]
DATA_ENV = "IQABENCH_DATA"


def rescale_to_1_5(raw: float, lo: float, hi: float, direction: Direction = "higher_better") -> float:
    """Map ``raw`` from [lo, hi] to [1, 5]; for DMOS (lower is better) the best image maps to 5."""
    if hi <= lo:
        raise ValueError(f"cannot rescale: max {hi} is not above min {lo}")
    unit = (raw - lo) / (hi - lo)
    if direction == "lower_better":
        unit = 1.0 - unit
    return 1.0 + 4.0 * unit


@dataclass(frozen=True)
class Record:
    """One labelled image."""

    #: path relative to the dataset root, with forward slashes
    image: str
    #: the label as published (MOS, DMOS, Elo...)
    mos_raw: float
    #: the label rescaled to [1, 5], higher is better
    mos: float
    #: "train", "val", "test" (or "all" where the dataset has no split)
    split: str
    #: the pristine reference the image was made from (synthetic-distortion sets)
    reference: str | None = None
    #: standard deviation of the raw opinion scores, when published
    std_raw: float | None = None
    #: the known degradation of a synthetically distorted image: ``{"type": str | None, "level": int}``
    #: (level 0 and type None for the pristine reference); None where the dataset does not say
    distortion: dict[str, Any] | None = None


@dataclass
class Provenance:
    """Where a dataset's numbers came from, so results can be traced and compared."""

    dataset: str
    root: str
    label_files: list[str]
    #: the scale as documented, e.g. (0, 100)
    nominal_range: tuple[float, float] | None
    direction: Direction
    #: the observed min and max used for rescaling
    rescale_min: float
    rescale_max: float
    split_source: str
    count: int
    official_count: int | None = None
    splits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DatasetIndex:
    """All records of a dataset, with provenance."""

    records: list[Record]
    provenance: Provenance

    def split(self, name: str | None) -> list[Record]:
        """Records of one split; ``None`` or ``"all"`` gives every record."""
        if name in (None, "all"):
            return list(self.records)
        chosen = [r for r in self.records if r.split == name]
        if not chosen:
            available = sorted({r.split for r in self.records})
            raise IQABenchError(
                f"dataset {self.provenance.dataset!r} has no records in split {name!r}; "
                f"splits available: {', '.join(available)}."
            )
        return chosen

    def splits(self) -> list[str]:
        return sorted({r.split for r in self.records})


def build_index(
    dataset: str,
    root: Path,
    rows: Sequence[dict[str, Any]],
    *,
    label_files: list[str],
    nominal_range: tuple[float, float] | None,
    direction: Direction,
    split_source: str,
    official_count: int | None,
    notes: Sequence[str] = (),
    rescale_range: tuple[float, float] | None = None,
) -> DatasetIndex:
    """Rescale raw rows (``image``, ``mos_raw``, ``split`` and optional extras) into an index.

    ``rescale_range`` overrides the observed min/max, for subsets that must keep
    the whole dataset's scale (e.g. a DeQA test meta that is one split).
    """
    if not rows:
        raise IQABenchError(f"dataset {dataset!r} at {root} has no records; check the label file(s) {label_files}.")
    values = [float(r["mos_raw"]) for r in rows]
    lo, hi = rescale_range if rescale_range is not None else (min(values), max(values))
    records = [
        Record(
            image=str(r["image"]).replace(os.sep, "/"),
            mos_raw=float(r["mos_raw"]),
            mos=rescale_to_1_5(float(r["mos_raw"]), lo, hi, direction),
            split=r.get("split", "all"),
            reference=r.get("reference"),
            std_raw=None if r.get("std_raw") is None else float(r["std_raw"]),
            distortion=r.get("distortion"),
        )
        for r in rows
    ]
    counts: dict[str, int] = {}
    for record in records:
        counts[record.split] = counts.get(record.split, 0) + 1
    notes = list(notes)
    if official_count is not None and len(records) != official_count:
        notes.append(f"record count {len(records)} differs from the official count {official_count}")
    provenance = Provenance(
        dataset=dataset,
        root=str(root),
        label_files=label_files,
        nominal_range=nominal_range,
        direction=direction,
        rescale_min=lo,
        rescale_max=hi,
        split_source=split_source,
        count=len(records),
        official_count=official_count,
        splits=counts,
        notes=notes,
    )
    return DatasetIndex(records=records, provenance=provenance)


class Dataset(ABC):
    """Base class of dataset plugins.

    ``root`` is the folder holding the dataset as distributed. When it is not
    given, it is ``<data root>/<default_dir>``, where the data root comes from
    ``--data-root``, else the suite's ``data_root``, else ``$IQABENCH_DATA``.
    """

    #: registry name, e.g. ``"koniq10k"``
    name: ClassVar[str]
    #: name used in tables, e.g. ``"KonIQ"``
    title: ClassVar[str]
    #: folder name under the data root
    default_dir: ClassVar[str]
    #: where the dataset is published, for error messages
    homepage: ClassVar[str] = ""
    #: the files that must exist under the root (for error messages and ``data check``)
    expected_files: ClassVar[tuple[str, ...]] = ()
    #: number of records of the official release
    official_count: ClassVar[int | None] = None
    #: split a test set uses when a suite names none
    default_test_split: ClassVar[str] = "test"

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else None

    @abstractmethod
    def load(self) -> DatasetIndex:
        """Parse the label files; raise :class:`DatasetNotFoundError` if they are missing."""

    def image_path(self, record: Record) -> Path:
        assert self.root is not None
        return self.root / record.image

    def missing_error(self, what: str) -> DatasetNotFoundError:
        """An error that tells a new user exactly what to put where."""
        files = "\n  ".join(self.expected_files) or "(see the plugin's documentation)"
        return DatasetNotFoundError(
            f"{self.title} ({self.name}): {what}.\n"
            f"Expected under {self.root}:\n  {files}\n"
            f"The dataset is published at {self.homepage or 'its authors’ site'}. "
            f"Point iqabench at the folder that holds `{self.default_dir}/` with --data-root DIR "
            f"or the {DATA_ENV} environment variable (or the suite's data_root)."
        )


def resolve_data_root(cli_root: str | None, suite_root: str | None) -> Path | None:
    """The data root: ``--data-root``, then the suite's ``data_root``, then ``$IQABENCH_DATA``."""
    for candidate in (cli_root, suite_root, os.environ.get(DATA_ENV)):
        if candidate:
            return Path(os.path.expanduser(str(candidate)))
    return None


def dataset_root(cls: type[Dataset], data_root: Path | None, explicit: str | None = None) -> Path | None:
    """The folder of one dataset: an explicit root wins, else ``data_root/default_dir``."""
    if explicit:
        return Path(os.path.expanduser(explicit))
    if data_root is None:
        return None
    return data_root / cls.default_dir
