"""DeQA-Score meta JSON files, and the generic ``deqa-meta`` dataset.

DeQA-Score (HF ``zhiyuanyou/Data-DeQA-Score``), Q-Insight and RALI evaluate on
the same per-dataset meta files: ``<DATASET>/metas/test_koniq_2k.json`` next
to ``<DATASET>/images/``. Each file is a JSON list of records with ``image``
(a path relative to the dataset folder, or a bare file name), ``gt_score`` (the
label on the dataset's raw scale) and optionally ``gt_score_norm`` (DeQA's own
[1, 5] value), ``std`` and ``std_norm``. The split is the file name's prefix
(``train_``, ``val_``, ``test_``). Reading these files exactly is what makes
iqabench's numbers comparable with the papers' tables.
"""

from __future__ import annotations

import decimal
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqabench.api import (
    Dataset,
    DatasetIndex,
    DatasetNotFoundError,
    Direction,
    IQABenchError,
    build_index,
    list_files,
    resolve_data_root,
)
from iqabench_plugins.datasets.files import ImageFinder

SPLIT_PREFIXES = ("train", "val", "test")
#: where a Data-DeQA-Score dataset folder keeps its metas, relative to the dataset root
META_SUBDIR = "metas"


def split_of_meta(path: Path, default: str = "test") -> str:
    """``train_koniq_7k.json`` -> "train"; a name without a split prefix is ``default``."""
    prefix = path.stem.split("_", 1)[0].lower()
    return prefix if prefix in SPLIT_PREFIXES else default


def find_meta_files(meta_dir: Path, key: str) -> list[Path]:
    """The meta files of one dataset in ``meta_dir``: ``<split>_<key>_*.json`` (e.g. key "koniq").

    The key is matched as a whole ``_``-separated word, case-insensitively,
    so "kadid" finds ``test_kadid_2k.json`` and "tid2013" finds
    ``test_tid2013_3k.json`` but "live" does not find ``test_livew_1k.json``.
    """
    found = []
    for name in sorted(list_files(meta_dir)):
        if not name.lower().endswith(".json"):
            continue
        words = Path(name).stem.lower().split("_")
        if len(words) >= 2 and words[0] in SPLIT_PREFIXES and key.lower() in words[1:]:
            found.append(meta_dir / name)
    return found


def decimals(value: decimal.Decimal | int | str) -> int:
    """Digits after the decimal point as written: 3 for ``0.062``; 0 for an int or an unreadable value."""
    try:
        exponent = decimal.Decimal(value.strip() if isinstance(value, str) else value).as_tuple().exponent
    except (decimal.InvalidOperation, TypeError, ValueError):
        return 0
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _score_from_id(record: dict[str, Any]) -> str | None:
    """The score of an ``id`` like ``"I66_01_01.png->4.63"`` (Q-Align's KADID list has no gt_score)."""
    identifier = record.get("id")
    if isinstance(identifier, str) and "->" in identifier:
        return identifier.rpartition("->")[2].strip()
    return None


def read_meta(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of one meta file, normalised, and notes on what was read.

    Each record gets ``image`` (from ``image``, or ``img_path`` as in Q-Align's
    ``livec.json`` / ``agi.json``), ``gt_score`` (a number, or a number in a
    string; from ``id`` ``"name->score"`` when absent, as in Q-Align's
    ``test_kadid.json``), ``precision`` (half a unit of the last decimal
    the file writes its scores with: Q-Align's CSIQ list rounds the official
    0.061989 to 0.062, which still equals it to that precision),
    ``gt_score_norm``, ``std`` and ``position`` (its index in the file).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle, parse_float=decimal.Decimal)  # keeps the digits as written
    except json.JSONDecodeError as exc:
        raise IQABenchError(
            f"{path} is not valid JSON ({exc}); expected a DeQA-Score meta file (a list of records)."
        ) from None
    if isinstance(content, dict) and isinstance(content.get("files"), list):
        content = content["files"]
    if not isinstance(content, list):
        raise IQABenchError(
            f"{path} holds a JSON {type(content).__name__}; a DeQA-Score meta file is a list of records "
            "with fields image and gt_score."
        )
    records = []
    from_id = 0
    for position, record in enumerate(content):
        image = record.get("image", record.get("img_path")) if isinstance(record, dict) else None
        score = record.get("gt_score") if isinstance(record, dict) else None
        if isinstance(record, dict) and score is None:
            score = _score_from_id(record)
            from_id += score is not None
        if not isinstance(image, str) or not image.strip() or score is None:
            raise IQABenchError(
                f"record {position} of {path} lacks an image path or a score ({str(record)[:120]}); a DeQA-Score "
                "meta record has image (or img_path), gt_score (or an id 'name->score') and optionally "
                "gt_score_norm, std."
            )
        numbers = {}
        for key, value in (("gt_score", score), ("gt_score_norm", record.get("gt_score_norm")),
                           ("std", record.get("std"))):
            try:
                numbers[key] = None if value is None else float(value)
            except (TypeError, ValueError):
                raise IQABenchError(f"record {position} of {path} has a non-numeric {key} {value!r}.") from None
        records.append({"image": image.strip(), **numbers, "decimals": decimals(score), "position": position})
    # writers drop trailing zeros (0.490 -> 0.49): the file's precision is that of its longest score
    precision = 0.5 * 10.0 ** -max((r.pop("decimals") for r in records), default=0)
    for record in records:
        record["precision"] = precision
    notes = [f"{path.name}: the score of {from_id} records was read from their id ('name->score')"] if from_id else []
    return records, notes


def rows_from_metas(
    metas: list[Path], finder: ImageFinder, default_split: str = "test"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for :func:`iqabench.contracts.dataset.build_index` from meta files, plus notes.

    Image paths are resolved against the folders the ``finder`` knows, so a
    meta naming ``images/x.jpg`` works with the official layout too; a path
    that leaves the root is kept as written, for ``build_index`` to refuse.
    An image listed in two splits is an error: it would make a test score
    meaningless.
    """
    rows: list[dict[str, Any]] = []
    notes = [f"splits and labels from DeQA-Score metas: {', '.join(p.name for p in metas)}"]
    seen: dict[str, str] = {}
    for path in metas:
        split = split_of_meta(path, default_split)
        records, read_notes = read_meta(path)
        notes += read_notes
        for record in records:
            image = record["image"]
            relative = finder.resolve(image) or image.replace("\\", "/")
            if relative in seen and seen[relative] != split:
                raise IQABenchError(
                    f"image {image} is in both the {seen[relative]} and the {split} meta ({path.name}); "
                    "the metas of one dataset must not overlap."
                )
            seen[relative] = split
            rows.append(
                {
                    "image": relative,
                    "mos_raw": record["gt_score"],
                    "split": split,
                    "std_raw": record["std"],
                    "gt_score_norm": record["gt_score_norm"],
                    "precision": record["precision"],
                    "source": f"{path}, record {record['position']}",
                }
            )
    if finder.ambiguous:
        example = sorted(finder.ambiguous)[0]
        notes.append(
            f"{len(finder.ambiguous)} image names occur in more than one folder under the root; the first in sorted "
            f"folder order was used (e.g. {example}: {', '.join(finder.duplicates[example])})"
        )
    return rows, notes


def check_range(value: Sequence[float] | None, option: str = "rescale_range") -> tuple[float, float] | None:
    """``(min, max)`` as floats, with the minimum below the maximum.

    A comma-separated ``-o rescale_range=3.9,88.4`` reaches here already split:
    option values are checked against the annotation before construction.
    """
    if value is None:
        return None
    low, high = (float(v) for v in value)
    if not low < high:
        raise IQABenchError(f"{option}: the minimum {low:g} must be below the maximum {high:g}.")
    return low, high


def compare_with_deqa_norm(index: DatasetIndex, rows: list[dict[str, Any]]) -> str | None:
    """A note on how iqabench's [1, 5] values compare with the metas' own ``gt_score_norm``."""
    pairs = [(record.mos, row["gt_score_norm"]) for record, row in zip(index.records, rows)
             if row.get("gt_score_norm") is not None]
    if not pairs:
        return None
    worst = max(abs(mine - theirs) for mine, theirs in pairs)
    verdict = "agrees" if worst < 1e-3 else "differs"
    return (f"rescaled mos {verdict} with the metas' gt_score_norm on {len(pairs)} records "
            f"(max |difference| {worst:.4g})")


class DeqaMetaDataset(Dataset):
    """Any DeQA-Score style meta JSON plus an image root, as a dataset.

    Parameters
    ----------
    root:
        The folder the meta's ``image`` paths are relative to (a
        Data-DeQA-Score dataset folder such as ``Data-DeQA-Score/KONIQ``).
        A path that does not exist as written is looked for by file name in
        every folder under the root, so Q-Align's lists (``koniq/x.jpg``,
        relative to a parent folder) work with the dataset's own folder.
    meta:
        One meta file or a list of them (a comma-separated string works on the
        command line: ``-o meta=metas/train_x.json,metas/test_x.json``).
        Relative paths are taken from ``root``. Default: every ``*.json`` in
        ``<root>/metas/``.
    direction:
        ``"higher_better"`` for MOS, ``"lower_better"`` for DMOS (flipped when
        rescaling so that 5 is always best). Nothing here can check it: the
        dataset plugins (e.g. ``csiq``) do, against the official labels.
    rescale_range:
        ``(min, max)`` of the whole dataset when the metas hold only part of it
        (``-o rescale_range=3.91,88.39`` or a YAML list); default: the min and
        max of all the given metas together.
    allow_outside_root:
        Accept image paths that resolve outside ``root`` (default: refused).
    """

    name = "deqa-meta"
    title = "DeQA meta"
    default_dir = "deqa-meta"
    homepage = "https://huggingface.co/datasets/zhiyuanyou/Data-DeQA-Score"
    expected_files = ("metas/<split>_<name>.json (DeQA-Score meta files)", "the images the metas name")
    official_count = None
    default_test_split = "test"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        meta: str | list[str] | None = None,
        direction: Direction = "higher_better",
        rescale_range: tuple[float, float] | None = None,
        allow_outside_root: bool = False,
    ) -> None:
        super().__init__(root, allow_outside_root=allow_outside_root)
        if direction not in ("higher_better", "lower_better"):
            raise IQABenchError(f"direction must be 'higher_better' or 'lower_better', not {direction!r}.")
        check_range(rescale_range)  # a bad value fails here, before any file is read
        self.meta = meta
        self.direction = direction
        self.rescale_range = rescale_range

    def _meta_paths(self) -> list[Path]:
        assert self.root is not None
        if self.meta is None:
            folder = self.root / META_SUBDIR
            paths = [folder / n for n in sorted(list_files(folder)) if n.endswith(".json")]
            if not paths:
                raise self.missing_error(f"no meta files given and none found in {self.root / META_SUBDIR}")
            return paths
        given = self.meta.split(",") if isinstance(self.meta, str) else list(self.meta)
        paths = [Path(os.path.expanduser(str(p).strip())) for p in given if str(p).strip()]
        paths = [p if p.is_absolute() else self.root / p for p in paths]
        for path in paths:
            if not path.is_file():
                raise self.missing_error(f"meta file {path} does not exist")
        return paths

    def load(self) -> DatasetIndex:
        if self.root is None:
            data_root = resolve_data_root(None, None)
            if data_root is None:
                raise DatasetNotFoundError(
                    "deqa-meta needs the folder its meta's image paths are relative to: pass root= "
                    "(--root on the command line) and meta=PATH.json."
                )
            self.root = data_root / self.default_dir
        if not self.root.is_dir():
            raise self.missing_error(f"the root folder {self.root} does not exist")
        metas = self._meta_paths()
        finder = ImageFinder(self.root, [".", "images"], search_tree=True)
        rows, notes = rows_from_metas(metas, finder)
        notes.append(f"direction {self.direction} as given (the direction option); not checked against official labels")
        index = build_index(
            self.name,
            self.root,
            rows,
            label_files=[str(p) for p in metas],
            nominal_range=None,
            direction=self.direction,
            split_source="deqa-meta",
            official_count=None,
            notes=notes,
            rescale_range=check_range(self.rescale_range),
            allow_outside_root=self.allow_outside_root,
        )
        agreement = compare_with_deqa_norm(index, rows)
        if agreement:
            index.provenance.notes.append(agreement)
        self.report_missing(index)
        return index
