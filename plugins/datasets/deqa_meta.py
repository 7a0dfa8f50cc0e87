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

import json
import os
from pathlib import Path
from typing import Any

from iqabench.dataset import Dataset, DatasetIndex, Direction, build_index, resolve_data_root
from iqabench.errors import DatasetNotFoundError, IQABenchError

from iqabench_plugins.datasets.files import ImageFinder, list_files
from iqabench_plugins.datasets.missing import report_missing

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


def read_meta(path: Path) -> list[dict[str, Any]]:
    """The records of one meta file; each must have ``image`` and a numeric ``gt_score``."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except json.JSONDecodeError as exc:
        raise IQABenchError(f"{path} is not valid JSON ({exc}); expected a DeQA-Score meta file (a list of records).")
    if isinstance(content, dict) and isinstance(content.get("files"), list):
        content = content["files"]
    if not isinstance(content, list):
        raise IQABenchError(
            f"{path} holds a JSON {type(content).__name__}; a DeQA-Score meta file is a list of records "
            "with fields image and gt_score."
        )
    for position, record in enumerate(content):
        if not isinstance(record, dict) or "image" not in record or "gt_score" not in record:
            raise IQABenchError(
                f"record {position} of {path} lacks `image` or `gt_score` ({str(record)[:120]}); "
                "a DeQA-Score meta record has image, gt_score and optionally gt_score_norm, std."
            )
        try:
            float(record["gt_score"])
        except (TypeError, ValueError):
            raise IQABenchError(f"record {position} of {path} has a non-numeric gt_score {record['gt_score']!r}.")
    return content


def rows_from_metas(
    metas: list[Path], finder: ImageFinder, default_split: str = "test"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for :func:`iqabench.dataset.build_index` from meta files, plus notes.

    Image paths are resolved against the folders the ``finder`` knows, so a
    meta naming ``images/x.jpg`` works with the official layout too. An image
    listed in two splits is an error: it would make a test score meaningless.
    """
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    norms: list[float | None] = []
    for path in metas:
        split = split_of_meta(path, default_split)
        for record in read_meta(path):
            image = str(record["image"])
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
                    "mos_raw": float(record["gt_score"]),
                    "split": split,
                    "std_raw": record.get("std"),
                }
            )
            norms.append(None if record.get("gt_score_norm") is None else float(record["gt_score_norm"]))
    for row, norm in zip(rows, norms):
        row["gt_score_norm"] = norm
    return rows, [f"splits and labels from DeQA-Score metas: {', '.join(p.name for p in metas)}"]


def compare_with_deqa_norm(index: DatasetIndex, rows: list[dict[str, Any]]) -> str | None:
    """A note on how iqabench's [1, 5] values compare with the metas' own ``gt_score_norm``."""
    pairs = [(record.mos, row["gt_score_norm"]) for record, row in zip(index.records, rows) if row.get("gt_score_norm") is not None]
    if not pairs:
        return None
    worst = max(abs(mine - theirs) for mine, theirs in pairs)
    verdict = "agrees" if worst < 1e-3 else "differs"
    return f"rescaled mos {verdict} with the metas' gt_score_norm on {len(pairs)} records (max |difference| {worst:.4g})"


class DeqaMetaDataset(Dataset):
    """Any DeQA-Score style meta JSON plus an image root, as a dataset.

    Parameters
    ----------
    root:
        The folder the meta's ``image`` paths are relative to (a
        Data-DeQA-Score dataset folder such as ``Data-DeQA-Score/KONIQ``).
    meta:
        One meta file or a list of them (a comma-separated string works on the
        command line: ``-o meta=metas/train_x.json,metas/test_x.json``).
        Relative paths are taken from ``root``. Default: every ``*.json`` in
        ``<root>/metas/``.
    direction:
        ``"higher_better"`` for MOS, ``"lower_better"`` for DMOS (flipped when
        rescaling so that 5 is always best).
    rescale_range:
        ``(min, max)`` of the whole dataset when the metas hold only part of it;
        default: the min and max of all the given metas together.
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
    ) -> None:
        super().__init__(root)
        if direction not in ("higher_better", "lower_better"):
            raise IQABenchError(f"direction must be 'higher_better' or 'lower_better', not {direction!r}.")
        self.meta = meta
        self.direction = direction
        self.rescale_range = None if rescale_range is None else (float(rescale_range[0]), float(rescale_range[1]))
        self.missing_images: list[str] = []

    def _meta_paths(self) -> list[Path]:
        assert self.root is not None
        if self.meta is None:
            paths = [self.root / META_SUBDIR / n for n in sorted(list_files(self.root / META_SUBDIR)) if n.endswith(".json")]
            if not paths:
                raise self.missing_error(f"no meta files given and none found in {self.root / META_SUBDIR}")
            return paths
        given = self.meta.split(",") if isinstance(self.meta, str) else list(self.meta)
        paths = [Path(os.path.expanduser(p.strip())) for p in given if str(p).strip()]
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
        finder = ImageFinder(self.root, [".", "images"])
        rows, notes = rows_from_metas(metas, finder)
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
            rescale_range=self.rescale_range,
        )
        agreement = compare_with_deqa_norm(index, rows)
        if agreement:
            index.provenance.notes.append(agreement)
        self.missing_images = report_missing(self.title, self.root, index, finder)
        return index
