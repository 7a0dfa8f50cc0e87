"""What the eight dataset plugins share: root finding, split choice, DeQA metas, image checks.

A dataset plugin only parses its official label file(s) into :class:`Labels`
(file names, raw scores, references, the official split if any); this base
class turns them into an index:

- the split source is chosen (``split_source="auto"``: DeQA-Score metas when
  present, else the dataset's own default: KonIQ's official split, a seeded
  reference-disjoint split for training sets, the whole set for
  out-of-domain-only sets);
- the images are found with one directory listing per folder;
- DeQA metas are checked against the official labels when both are there:
  the direction (a meta running opposite to the official labels stops the
  load), the values, and images the official labels do not have (warnings);
- the raw labels are rescaled to [1, 5] over the whole dataset
  (:func:`iqabench.contracts.dataset.build_index`, which also keeps every image under
  the root), DMOS flipped;
- missing images are listed in a warning and kept in the index.
"""

from __future__ import annotations

import math
import os
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from iqabench.api import (
    Dataset,
    DatasetIndex,
    Direction,
    IQABenchError,
    build_index,
)
from iqabench_plugins.datasets.deqa_meta import META_SUBDIR, compare_with_deqa_norm, find_meta_files, rows_from_metas
from iqabench_plugins.datasets.files import ImageFinder
from iqabench_plugins.datasets.splits import split_by_reference

SPLIT_SOURCES = ("auto", "official", "deqa", "random", "all")


@dataclass
class Label:
    """One row of an official label file."""

    #: the image's file name as the label file gives it
    name: str
    mos_raw: float
    #: folder (relative to the root) where the image is expected, used when it is missing
    folder: str
    std_raw: float | None = None
    reference: str | None = None
    #: the official split, for datasets that publish one
    split: str | None = None
    #: where the row is ("mos_with_names.txt, line 12"), for error messages
    source: str | None = None


@dataclass
class Labels:
    """The parsed official label file(s) of a dataset."""

    labels: list[Label]
    files: list[str]
    notes: list[str] = field(default_factory=list)


#: fewer shared images than this and the direction of a meta is not checked
MIN_SHARED_FOR_DIRECTION = 3
#: meta images not in the official labels, or with other values, that a warning names
EXAMPLES = 3


class OfficialDataset(Dataset):
    """Base of the dataset plugins that read an official release (and optionally DeQA metas).

    Parameters (shared by every subclass)
    -------------------------------------
    root:
        The dataset's folder; default ``<data root>/<default_dir>``.
    split_source:
        ``"auto"`` (default), ``"official"`` (KonIQ only), ``"deqa"`` (the
        DeQA-Score meta files), ``"random"`` (seeded, reference-disjoint where
        the dataset has references) or ``"all"`` (every image in split "all",
        for out-of-domain tests).
    meta_dir:
        Folder of the DeQA-Score meta files; default ``<root>/metas``
        (relative paths are taken from ``root``).
    seed, test_fraction:
        The seeded split: the fraction of references (or images) that go to
        the test set. pyiqa's convention is seed 123 and 8:2.
    allow_outside_root:
        Accept label or meta paths that resolve outside the root (default:
        refused; see :func:`iqabench.contracts.dataset.build_index`).
    """

    #: the scale as documented
    nominal_range: ClassVar[tuple[float, float] | None] = None
    direction: ClassVar[Direction] = "higher_better"
    #: the dataset's word in DeQA meta file names (``test_<key>_2k.json``)
    meta_key: ClassVar[str]
    #: what ``split_source="auto"`` means when there are no DeQA metas
    auto_split: ClassVar[str] = "random"
    #: files (relative to the root) whose presence marks the dataset's folder
    marker_files: ClassVar[tuple[str, ...]] = ()
    #: sub-folders an unpacked archive may add (``kadid10k/kadid10k/dmos.csv``)
    nested_dirs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        split_source: str = "auto",
        meta_dir: str | os.PathLike | None = None,
        seed: int = 123,
        test_fraction: float = 0.2,
        allow_outside_root: bool = False,
    ) -> None:
        super().__init__(root, allow_outside_root=allow_outside_root)
        if split_source not in SPLIT_SOURCES:
            raise IQABenchError(f"split_source must be one of {', '.join(SPLIT_SOURCES)}, not {split_source!r}.")
        if split_source == "official" and self.auto_split != "official":
            raise IQABenchError(
                f"{self.title} publishes no official train/test split; use split_source deqa, random or all."
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise IQABenchError(f"seed must be an integer, not {seed!r}.")
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise IQABenchError(f"test_fraction must be a number between 0 and 1, not {test_fraction!r}.")
        self.split_source = split_source
        if split_source == "all":
            self.default_test_split = "all"
        elif split_source in ("official", "random"):
            # a split asked for explicitly has a test part; testing on "all" would include the training images
            self.default_test_split = "test"
        self.meta_dir = meta_dir
        self.seed = seed
        self.test_fraction = test_fraction

    # -- what a subclass provides -------------------------------------------------------------
    @abstractmethod
    def read_labels(self, root: Path) -> Labels | None:
        """Parse the official label file(s) under ``root``; None when they are not there."""

    @abstractmethod
    def image_folders(self, root: Path) -> list[str]:
        """Folders (relative to ``root``) that may hold the images, most likely first."""

    def official_subset(self, labels: Labels) -> Labels:
        """The labels indexed when reading the official release (LIVE-W drops its training images).

        Metas are compared with every official label, so this applies to the
        official path only.
        """
        return labels

    # -- the shared pipeline ------------------------------------------------------------------
    def locate_root(self) -> Path:
        """The dataset folder, descending into an archive's extra top folder when needed."""
        if not self.root.is_dir():  # reading root raises, saying how to give one, when there is none
            raise self.missing_error(f"the folder {self.root} does not exist")
        if not self._marked(self.root):
            for nested in self.nested_dirs:
                if self._marked(self.root / nested):
                    self.root = self.root / nested
                    break
        return self.root

    def _marked(self, folder: Path) -> bool:
        return (folder / META_SUBDIR).is_dir() or any((folder / m).is_file() for m in self.marker_files)

    def meta_files(self, root: Path) -> list[Path]:
        meta_dir = Path(os.path.expanduser(self.meta_dir)) if self.meta_dir else Path(META_SUBDIR)
        if not meta_dir.is_absolute():
            meta_dir = root / meta_dir
        return find_meta_files(meta_dir, self.meta_key)

    def load(self) -> DatasetIndex:
        root = self.locate_root()
        finder = ImageFinder(root, [*self.image_folders(root), "images"])
        metas = self.meta_files(root)
        labels = self.read_labels(root)
        source = self.split_source
        if source == "auto":
            source = "deqa" if metas else self.default_split_source(labels)
        cautions: list[str] = []
        if source == "deqa":
            if not metas:
                raise self.missing_error(
                    f"split_source='deqa' but no DeQA-Score meta files (<split>_{self.meta_key}_*.json) were found "
                    f"in {Path(self.meta_dir) if self.meta_dir else root / META_SUBDIR}; set meta_dir or download "
                    "the metas from https://huggingface.co/datasets/zhiyuanyou/Data-DeQA-Score"
                )
            rows, notes = rows_from_metas(metas, finder)
            if labels is None:
                rescale_range = None
                notes.append(
                    "official label files not found: rescaled over the range of all the metas together; the metas' "
                    f"gt_score assumed {self.direction} like the official labels (not checked without them)"
                )
            else:
                rescale_range = self._check_metas(rows, labels, notes, cautions)
            label_files = [str(p) for p in metas] + (labels.files if labels else [])
        else:
            if labels is None:
                raise self.missing_error("the label file(s) were not found (nor DeQA-Score metas under metas/)")
            labels = self.official_subset(labels)
            rows = [self._row(label, finder) for label in labels.labels]
            notes = list(labels.notes)
            rescale_range = None
            label_files = labels.files
            notes.append(self._assign_splits(rows, labels, source))
        for row in rows:
            row["distortion"] = self.distortion(str(row["image"]))
        index = build_index(
            self.name,
            root,
            rows,
            label_files=label_files,
            nominal_range=self.nominal_range,
            direction=self.direction,
            split_source=(source if source != "random"
                          else f"random(seed={self.seed}, test_fraction={self.test_fraction})"),
            official_count=self.expected_count(),
            notes=notes,
            rescale_range=rescale_range,
            allow_outside_root=self.allow_outside_root,
        )
        for caution in cautions:
            index.provenance.warn(caution)
        if source == "deqa":
            agreement = compare_with_deqa_norm(index, rows)
            if agreement:
                index.provenance.notes.append(agreement)
        self.report_missing(index)
        return index

    def distortion(self, image: str) -> dict[str, Any] | None:
        """The distortion type and level an image's name (or path) records, for synthetic-distortion sets:
        ``{"type": str, "level": int | None}``; None where the dataset records none (authentic distortions)."""
        return None

    def default_split_source(self, labels: Labels | None) -> str:
        """What ``split_source="auto"`` means when there are no DeQA metas."""
        return self.auto_split

    def expected_count(self) -> int | None:
        """The official count of the records this configuration yields (LIVE-W overrides it)."""
        return self.official_count

    @staticmethod
    def _row(label: Label, finder: ImageFinder) -> dict[str, Any]:
        return {
            "image": finder.find(label.name) or (label.name if label.folder == "." else f"{label.folder}/{label.name}"),
            "mos_raw": label.mos_raw,
            "std_raw": label.std_raw,
            "reference": label.reference,
            "split": label.split,
            "source": label.source,
        }

    def _assign_splits(self, rows: list[dict[str, Any]], labels: Labels, source: str) -> str:
        if source == "official":
            if any(row["split"] is None for row in rows):
                raise self.missing_error(
                    "split_source='official' needs the label file that carries the official split"
                )
            return f"official split from {', '.join(labels.files)}"
        if source == "all":
            for row in rows:
                row["split"] = "all"
            return "no split: the whole dataset is the test set (out-of-domain use)"
        splits = split_by_reference(rows, seed=self.seed, test_fraction=self.test_fraction)
        for row, split in zip(rows, splits):
            row["split"] = split
        unit = "references" if any(row.get("reference") for row in rows) else "images"
        return f"seeded random split by {unit}: seed {self.seed}, test fraction {self.test_fraction}"

    def _check_metas(
        self, rows: list[dict[str, Any]], labels: Labels, notes: list[str], cautions: list[str]
    ) -> tuple[float, float] | None:
        """Compare meta rows with the official labels; the rescale range to use.

        Stops when the metas run opposite to the official labels (the flip of a
        DMOS set would turn them upside down); warns about meta images the
        official labels lack and meta values that differ from them.
        """
        official = {label.name.lower(): label.mos_raw for label in labels.labels}
        names = [row["image"].rpartition("/")[2] for row in rows]
        shared = [(row, official[name.lower()]) for row, name in zip(rows, names) if name.lower() in official]
        strangers = [name for name in names if name.lower() not in official]
        if strangers:
            cautions.append(
                f"{len(strangers)} of {len(rows)} meta records name images that are not in the official labels of "
                f"{self.title} ({', '.join(strangers[:EXAMPLES])}{' ...' if len(strangers) > EXAMPLES else ''}): "
                "they are kept, and count as unscored where the files are absent"
            )
        differing = [
            (row, theirs) for row, theirs in shared
            if abs(row["mos_raw"] - theirs) > row.get("precision", 0.0) + 1e-9 * max(1.0, abs(theirs))
        ]
        notes.append(
            f"meta gt_score equals the official label (to the meta's printed precision) for "
            f"{len(shared) - len(differing)} of {len(shared)} images found in both"
        )
        if differing:
            examples = ", ".join(
                f"{row['image'].rpartition('/')[2]}: meta {row['mos_raw']:g}, official {theirs:g}"
                for row, theirs in differing[:EXAMPLES]
            )
            cautions.append(
                f"meta gt_score differs from the official label for {len(differing)} of {len(shared)} images found "
                f"in both (e.g. {examples}): scores on these metas are not scores on the official labels"
            )
        notes.append(self._check_direction(shared, labels))
        lo, hi = min(official.values()), max(official.values())
        meta_values = [row["mos_raw"] for row in rows]
        tolerance = 1e-6 * max(abs(hi - lo), 1.0)
        if min(meta_values) >= lo - tolerance and max(meta_values) <= hi + tolerance:
            notes.append(f"rescaled over the official labels' whole-dataset range [{lo:g}, {hi:g}]")
            return lo, hi
        notes.append(
            f"meta gt_score values [{min(meta_values):g}, {max(meta_values):g}] fall outside the official range "
            f"[{lo:g}, {hi:g}] (another scale?): rescaled over the metas' own range"
        )
        return None

    def _check_direction(self, shared: list[tuple[dict[str, Any], float]], labels: Labels) -> str:
        """A note saying the metas run the official labels' way; an error when they run the other way."""
        if len(shared) < MIN_SHARED_FOR_DIRECTION:
            return (
                f"direction of the metas not checked (only {len(shared)} of their images are in the official "
                f"labels): {self.direction} assumed, as the official labels"
            )
        from scipy.stats import spearmanr

        rho = float(spearmanr([row["mos_raw"] for row, _ in shared], [theirs for _, theirs in shared])[0])
        if math.isnan(rho):
            return (f"direction of the metas not checked (their scores or the labels are constant): "
                    f"{self.direction} assumed")
        if rho <= 0:
            better = "higher" if self.direction == "lower_better" else "lower"
            raise IQABenchError(
                f"{self.title}: the DeQA meta scores do not run the way of the official labels "
                f"({', '.join(labels.files)}, {self.direction.replace('_', ' ')}): Spearman correlation {rho:+.3f} "
                f"over the {len(shared)} images in both. The metas seem to hold scores where {better} is better, "
                "and the rescaling would turn them upside down. Check the meta files; to use them as they are, read "
                "them with the deqa-meta dataset and its direction option, or use split_source=official/random/all "
                "to ignore them."
            )
        return (
            f"direction of the metas checked: Spearman correlation {rho:+.3f} between their gt_score and the "
            f"official labels over {len(shared)} images, so they are {self.direction} like the official labels"
        )
