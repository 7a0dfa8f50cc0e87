"""The contract every IQA dataset plugin fulfils, and MOS rescaling.

A dataset plugin reads its official label files (or a DeQA-Score meta JSON)
and returns a :class:`DatasetIndex`: one :class:`Record` per image plus the
:class:`Provenance` that says where every number came from. Scores are kept
raw and rescaled to [1, 5] by min-max over the whole dataset as observed (all
splits together), the convention of DeQA-Score and VisualQuality-R1; DMOS
datasets are flipped so that higher is always better.

Label and meta files are input from strangers: :func:`build_index` refuses
every image path that resolves outside the dataset's root (``../``, absolute
paths, symbolic links), for every dataset plugin, unless the user opts in with
the dataset option ``allow_outside_root``.
"""

from __future__ import annotations

import math
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from iqabench.errors import DatasetNotFoundError, IQABenchError, did_you_mean

Direction = Literal["higher_better", "lower_better"]
DATA_ENV = "IQABENCH_DATA"
#: how many missing image names a warning spells out before giving only the count
MISSING_SHOWN = 5


class DatasetWarning(UserWarning):
    """Something a reader of the results must know about a dataset (also kept in ``Provenance.warnings``)."""


class MissingImagesWarning(DatasetWarning):
    """Some images named in a dataset's labels are not on disk."""


class ImageOutsideRootError(IQABenchError):
    """A label or meta file names an image outside the dataset's root, and the user has not allowed it."""


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

    #: path relative to the dataset root, with forward slashes (outside it only with ``allow_outside_root``)
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
    #: facts that may make the numbers differ from the dataset's published ones (``data check`` shows them)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warn(self, message: str, category: type[Warning] = DatasetWarning) -> None:
        """Keep ``message`` with the provenance and emit it as a Python warning."""
        self.warnings.append(message)
        warnings.warn(message, category, stacklevel=3)


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


def list_files(folder: str | os.PathLike) -> list[str]:
    """Names of the regular files in ``folder`` (empty when it does not exist); symbolic links to files count."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _where(row: dict[str, Any], position: int, label_files: Sequence[str]) -> str:
    """Where a row came from, for messages: the plugin's ``source`` (file and line or record) if it gave one."""
    return str(row.get("source") or f"record {position} of {', '.join(label_files) or 'the label files'}")


def _symlink_names(folder: str) -> set[str]:
    """Names of the symbolic links in ``folder``: one ``scandir``, no ``stat`` per file."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_symlink()}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return set()


def images_outside_root(root: Path, images: Sequence[str]) -> list[tuple[int, str]]:
    """``(position, resolved path)`` of the images that resolve outside ``root``.

    An image path is joined to the root (an absolute one replaces it), ``..``
    is resolved, and symbolic links are followed, those of the folders and the
    file's own. Each distinct folder is resolved and listed once, so 10k
    images in one folder cost two system calls, not 10k.
    """
    real_root = os.path.realpath(root)
    prefix = os.path.join(real_root, "")

    def inside(path: str) -> bool:
        return path == real_root or path.startswith(prefix)

    folders: dict[str, tuple[bool, str, set[str]]] = {}
    outside = []
    for position, image in enumerate(images):
        cut = image.rfind("/") + 1  # "/x.png" keeps its "/": absolute paths stay absolute
        folder, name = image[:cut], image[cut:]
        known = folders.get(folder)
        if known is None:
            real_folder = os.path.realpath(os.path.join(root, folder))
            known = folders[folder] = (inside(real_folder), real_folder, _symlink_names(real_folder))
        folder_inside, real_folder, links = known
        if name in links or name in ("", ".", ".."):
            target = os.path.realpath(os.path.join(real_folder, name))
        elif folder_inside:
            continue
        else:
            target = os.path.join(real_folder, name)
        if not inside(target):
            outside.append((position, target))
    return outside


def confine_to_root(
    dataset: str, root: Path, rows: Sequence[dict[str, Any]], label_files: Sequence[str], allow_outside_root: bool
) -> str | None:
    """Refuse rows whose image is outside ``root``; with ``allow_outside_root``, a note saying how many are.

    Label and meta files come from strangers: without this, a meta naming
    ``../../home/x.jpg`` or ``/etc/...`` would make iqabench open any file the
    user can read and publish a score for it.
    """
    outside = images_outside_root(root, [str(r["image"]) for r in rows])
    if not outside:
        return None
    if allow_outside_root:
        return f"{len(outside)} image paths resolve outside the dataset root (allowed by allow_outside_root)"
    position, target = outside[0]
    others = f" ({len(outside) - 1} more records do too)" if len(outside) > 1 else ""
    raise ImageOutsideRootError(
        f"{dataset}: {_where(rows[position], position, label_files)} names the image {rows[position]['image']!r}, "
        f"which resolves to {target}, outside the dataset root {root}{others}. iqabench reads only images under "
        "the dataset root, so that a label or meta file cannot make it open other files. If the images are "
        "outside on purpose (e.g. linked from another disk), allow it with the dataset option "
        "allow_outside_root: true (-o allow_outside_root=true)."
    )


#: the keys a row given to :func:`build_index` may have, and what each means (``docs/plugins.md`` lists them)
ROW_KEYS: dict[str, str] = {
    "image": "required: the image's path relative to the dataset root, forward or native slashes",
    "mos_raw": "required: the score as published (MOS, DMOS, Elo...), a finite number",
    "split": 'the split the image belongs to ("train", "val", "test"...); default "all"',
    "reference": "the pristine image this one was made from (synthetic-distortion sets)",
    "std_raw": "the standard deviation of the opinion scores, on the published scale",
    "distortion": 'the known degradation: {"type": str | None, "level": int}',
    "source": 'where the row came from ("labels.csv, line 12"), for error messages',
}
REQUIRED_ROW_KEYS = ("image", "mos_raw")


def check_rows(dataset: str, rows: Sequence[dict[str, Any]], label_files: Sequence[str]) -> None:
    """Refuse a row without ``image`` or ``mos_raw``, or with a score that is not a finite number, naming it."""
    for position, row in enumerate(rows):
        missing = [key for key in REQUIRED_ROW_KEYS if key not in row]
        if missing:
            hints = "".join(did_you_mean(key, [k for k in row if k not in ROW_KEYS], n=1) for key in missing)
            raise IQABenchError(
                f"dataset {dataset!r}: {_where(row, position, label_files)} has no {' and no '.join(missing)} key "
                f"(its keys: {', '.join(map(str, row)) or 'none'}).{hints} A row has the keys {', '.join(ROW_KEYS)}."
            )
        try:
            value = float(row["mos_raw"])
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value) or isinstance(row["mos_raw"], bool):
            raise IQABenchError(
                f"dataset {dataset!r}: {_where(row, position, label_files)} has the score {row['mos_raw']!r} for "
                f"{row['image']!r}, not a finite number. Fix the label file, or leave the row out."
            )


def build_index(
    dataset: str,
    root: Path,
    rows: Sequence[dict[str, Any]],
    *,
    direction: Direction,
    label_files: Sequence[str] = (),
    nominal_range: tuple[float, float] | None = None,
    split_source: str | None = None,
    official_count: int | None = None,
    notes: Sequence[str] = (),
    rescale_range: tuple[float, float] | None = None,
    allow_outside_root: bool = False,
) -> DatasetIndex:
    """The :class:`DatasetIndex` of raw rows: scores rescaled to [1, 5], paths confined to ``root``, provenance.

    ``dataset`` is the dataset's registry name and ``root`` its folder (``self.root``). Each row is a dict with
    the keys of :data:`ROW_KEYS`: ``image`` and ``mos_raw`` required; ``split``, ``reference``, ``std_raw``,
    ``distortion`` and ``source`` optional; other keys are ignored (a plugin may keep its own data there). A row
    without a required key or with a score that is not a finite number is an error naming the row (by its
    ``source`` when given).

    Keywords, all recorded in the :class:`Provenance` that results carry:

    * ``direction``: ``"higher_better"`` (MOS) or ``"lower_better"`` (DMOS: flipped so that 5 is best);
    * ``label_files``: the files the rows were read from, relative to ``root`` (named in messages);
    * ``nominal_range``: the scale as documented, e.g. ``(0, 100)``, for the record only;
    * ``split_source``: where the splits come from ("official train/test lists", "random, seed 0"); default:
      "the label files" when rows have a split, else "none: every record is in split 'all'";
    * ``official_count``: the number of images of the official release; a different count adds a note;
    * ``notes``: facts a reader of the results should know (kept in the provenance);
    * ``rescale_range``: the (min, max) to rescale from instead of the observed ones, for a subset that must keep
      the whole dataset's scale (e.g. a DeQA test meta that is one split);
    * ``allow_outside_root``: the dataset option of that name: accept image paths that resolve outside
      ``root`` (refused by default, see :func:`confine_to_root`).
    """
    if not rows:
        raise IQABenchError(f"dataset {dataset!r} at {root} has no records; check the label file(s) {label_files}.")
    label_files = list(label_files)
    check_rows(dataset, rows, label_files)
    if split_source is None:
        split_source = ("the label files" if any("split" in r for r in rows)
                        else "none: every record is in split 'all'")
    notes = list(notes)
    outside = confine_to_root(dataset, root, rows, label_files, allow_outside_root)
    if outside:
        notes.append(outside)
    rows, repeated = _without_repeated_rows(dataset, rows, label_files)
    values = [float(r["mos_raw"]) for r in rows]
    lo, hi = rescale_range if rescale_range is not None else (min(values), max(values))
    if hi <= lo:
        what = (f"the rescale range [{lo:g}, {hi:g}]" if rescale_range is not None
                else f"all {len(rows)} scores are {lo:g}")
        raise IQABenchError(
            f"dataset {dataset!r}: cannot rescale to [1, 5]: {what}. Check the label file(s) {', '.join(label_files)}"
            + (" or the rescale_range option." if rescale_range is not None else ".")
        )
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
    if repeated:
        provenance.warn(repeated)
    return DatasetIndex(records=records, provenance=provenance)


def _without_repeated_rows(
    dataset: str, rows: Sequence[dict[str, Any]], label_files: Sequence[str]
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows with each image once: a repeated identical row is dropped (with a warning); a conflicting one is refused.

    An image listed twice would be scored twice and weigh double in every correlation; listed twice with
    different scores or splits, no rule can say which label is the published one.
    """
    first: dict[str, int] = {}
    kept, dropped = [], []
    for position, row in enumerate(rows):
        image = str(row["image"]).replace(os.sep, "/")
        if image not in first:
            first[image] = position
            kept.append(row)
            continue
        earlier = rows[first[image]]
        same = (float(earlier["mos_raw"]) == float(row["mos_raw"])
                and earlier.get("split", "all") == row.get("split", "all"))
        if not same:
            raise IQABenchError(
                f"dataset {dataset!r}: the image {image!r} is listed twice with different labels: "
                f"{_where(earlier, first[image], label_files)} (score {earlier['mos_raw']!r}, split "
                f"{earlier.get('split', 'all')!r}) and {_where(row, position, label_files)} (score "
                f"{row['mos_raw']!r}, split {row.get('split', 'all')!r}). Each image must have one label; remove the "
                "wrong row."
            )
        dropped.append(_where(row, position, label_files))
    if not dropped:
        return kept, None
    more = len(dropped) - MISSING_SHOWN
    shown = "; ".join(dropped[:MISSING_SHOWN]) + (f" and {more} more" if more > 0 else "")
    return kept, (f"{len(dropped)} row(s) repeat an earlier row exactly (same image, score and split) and were "
                  f"read once: {shown}")


class Dataset(ABC):
    """Base class of dataset plugins.

    ``root`` is the folder holding the dataset as distributed. When it is not
    given, it is ``<data root>/<default_dir>``, where the data root comes from
    ``--data-root``, else the suite's ``data_root``, else ``$IQABENCH_DATA``.
    :attr:`root` is then always a :class:`~pathlib.Path`; reading it when no
    folder is known at all raises :class:`DatasetNotFoundError` with what to
    do, so a plugin never meets ``None``.

    A dataset whose records carry no split (every record in ``"all"``) needs
    nothing more: a test set of it uses every record. A dataset with splits is
    tested on ``"test"`` unless the suite names a split (or the class sets
    :attr:`default_test_split`).

    ``allow_outside_root`` lets the label or meta files name images outside
    ``root`` (``../``, absolute paths, links to another disk); by default
    :func:`build_index` refuses them. A plugin passes it on to
    :func:`build_index` and accepts it as a keyword (directly or through
    ``**options``) so that users can set it.

    What the core asks of every dataset besides :meth:`load`:
    :meth:`missing_images` (which indexed images are absent, for ``data
    check`` and the warnings) and :meth:`is_generated` (whether a dataset that
    makes its own images has made them, so ``data check`` never generates).
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
    #: where ``iqabench data download`` gets it (an :class:`iqabench.data.sources.DatasetSource`); None: nowhere
    download: ClassVar[Any] = None
    #: split a test set uses when a suite names none; None (the default): "test" where the records have one,
    #: else "all" (see :meth:`test_split`)
    default_test_split: ClassVar[str | None] = None
    #: whether label or meta files may name images outside ``root`` (the dataset option of the same name)
    allow_outside_root: bool = False
    _missing_cache: tuple[DatasetIndex, list[Record]] | None = None

    def __init__(self, root: str | os.PathLike | None = None, *, allow_outside_root: bool = False) -> None:
        if not isinstance(allow_outside_root, bool):
            raise IQABenchError(f"allow_outside_root must be true or false, not {allow_outside_root!r}.")
        if root is None:
            data_root = resolve_data_root(None, None)
            root = data_root / self.default_dir if data_root is not None else None
        self._root = Path(os.path.expanduser(str(root))) if root is not None else None
        self.allow_outside_root = allow_outside_root
        self._index: DatasetIndex | None = None

    @property
    def root(self) -> Path:
        """The dataset's folder; a :class:`DatasetNotFoundError` saying how to give one when none is known."""
        if self._root is None:
            raise self.missing_error("no dataset folder given")
        return self._root

    @root.setter
    def root(self, folder: str | os.PathLike) -> None:
        self._root = Path(folder)

    @abstractmethod
    def load(self) -> DatasetIndex:
        """Parse the label files; raise :class:`DatasetNotFoundError` if they are missing."""

    def image_path(self, record: Record) -> Path:
        return self.root / record.image

    def index(self) -> DatasetIndex:
        """:meth:`load`'s index, read once per instance (planning a run asks for it more than once)."""
        if self._index is None:
            self._index = self.load()
        return self._index

    def test_split(self) -> str:
        """The split a test set uses when the suite names none.

        :attr:`default_test_split` when the class sets one (then no label file is read); otherwise ``"test"``
        when the records have that split and ``"all"`` when they do not, so a dataset without splits needs no
        declaration.
        """
        if self.default_test_split is not None:
            return self.default_test_split
        return "test" if "test" in self.index().splits() else "all"

    def is_generated(self) -> bool:
        """Whether :meth:`load` would find its images without making them.

        Datasets that make their own images on first use (``synthetic``)
        override this; a downloaded dataset has nothing to generate: True.
        """
        return True

    def missing_images(self, index: DatasetIndex) -> list[Record]:
        """The records of ``index`` (from :meth:`load`) whose image file is not on disk.

        One directory listing per folder, so 10k records cost a few
        ``scandir`` calls; the answer for the last index asked about is kept,
        so asking again after :meth:`report_missing` is free.
        """
        if self._missing_cache is not None and self._missing_cache[0] is index:
            return list(self._missing_cache[1])
        root = index.provenance.root
        listed: dict[str, set[str]] = {}
        missing = []
        for record in index.records:
            cut = record.image.rfind("/") + 1
            folder, name = record.image[:cut], record.image[cut:]
            names = listed.get(folder)
            if names is None:  # root / folder, as the runner opens it (an absolute folder replaces the root)
                names = listed[folder] = set(list_files(os.path.join(root, folder)))
            if name not in names:
                missing.append(record)
        self._missing_cache = (index, missing)
        return list(missing)

    def report_missing(self, index: DatasetIndex) -> list[Record]:
        """Note and warn about absent images; they stay in the index and count as unscored, never dropped."""
        missing = self.missing_images(index)
        if missing:
            shown = ", ".join(r.image for r in missing[:MISSING_SHOWN])
            more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
            message = (
                f"{self.title}: {len(missing)} of {len(index.records)} image files are missing under {self.root}: "
                f"{shown}{more}. They stay in the index and count as unscored; complete the download to score them."
            )
            index.provenance.notes.append(message)
            warnings.warn(message, MissingImagesWarning, stacklevel=3)
        return missing

    def missing_error(self, what: str) -> DatasetNotFoundError:
        """An error that tells a new user exactly what to put where, whichever command they ran."""
        files = "\n  ".join(self.expected_files) or "(see the plugin's documentation)"
        where = self._root if self._root is not None else f"<data root>/{self.default_dir} (no data root is set)"
        return DatasetNotFoundError(
            f"{self.title} ({self.name}): {what}. Give its folder with --root DIR (a suite's `root:`, "
            f"create_dataset(..., root=DIR)), or the folder that holds `{self.default_dir}/` with --data-root DIR, "
            f"the suite's data_root or the {DATA_ENV} environment variable.\n"
            f"Expected under {where}:\n  {files}\n"
            f"The dataset is published at {self.homepage or 'its authors’ site'}."
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
