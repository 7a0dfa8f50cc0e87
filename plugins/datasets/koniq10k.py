"""KonIQ-10k (Hosu et al., 2020): 10,073 in-the-wild photos, MOS from crowd ratings.

Official release (database.mmsp-kn.de): ``koniq10k_distributions_sets.csv``
(image_name, c1..c5, c_total, MOS, SD, set) carries the 0-100 MOS and the
official split (training 7,058 / validation 1,000 / test 2,015);
``koniq10k_scores_and_distributions.csv`` (image_name, c1..c5, c_total, MOS,
SD, MOS_zscore) has MOS on 1-5 and the 0-100 value as MOS_zscore. Images are in
``1024x768/`` (the size the papers use) and ``512x384/``; many users have only
one of the two folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iqabench.api import DatasetIndex, IQABenchError
from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import first_existing, read_csv_rows, to_float

SETS_FILE = "koniq10k_distributions_sets.csv"
SCORES_FILE = "koniq10k_scores_and_distributions.csv"
RESOLUTIONS = ("1024x768", "512x384")
RESOLUTION_CHOICES = ("auto", *RESOLUTIONS)
OFFICIAL_SPLITS = {"training": "train", "validation": "val", "test": "test"}


class KonIQ10k(OfficialDataset):
    """KonIQ-10k: in-the-wild photos, MOS 0-100 (higher is better), official 7,058/1,000/2,015 split.

    Parameters
    ----------
    resolution:
        The image folder to read: ``"1024x768"`` (as in Q-Align / DeQA-Score),
        ``"512x384"``, or ``"auto"`` (default): ``1024x768/`` when it is there,
        else ``512x384/`` with a warning (scores on the smaller images are not
        comparable with the papers'; choose it explicitly to say so).
    split_source, meta_dir, seed, test_fraction:
        See :class:`~iqabench_plugins.datasets.official.OfficialDataset`;
        ``"auto"`` is the DeQA metas when present, else the official split
        from the sets csv.
    """

    name = "koniq10k"
    title = "KonIQ"
    default_dir = "koniq10k"
    homepage = "http://database.mmsp-kn.de/koniq-10k-database.html"
    download = DOWNLOADS["koniq10k"]
    expected_files = (
        f"{SETS_FILE} (or {SCORES_FILE}; also accepted under metadata/)",
        "1024x768/*.jpg (or 512x384/*.jpg, read when 1024x768/ is absent or with resolution=512x384)",
        "or instead: metas/train_koniq_7k.json, metas/test_koniq_2k.json and images/ (Data-DeQA-Score KONIQ)",
    )
    official_count = 10073
    default_test_split = "test"
    nominal_range = (0.0, 100.0)
    direction = "higher_better"
    meta_key = "koniq"
    auto_split = "official"
    marker_files = (SETS_FILE, SCORES_FILE, f"metadata/{SETS_FILE}", f"metadata/{SCORES_FILE}")
    nested_dirs = ("koniq10k", "KONIQ")

    def __init__(self, root: str | os.PathLike | None = None, *, resolution: str = "auto", **options: Any) -> None:
        super().__init__(root, **options)
        if resolution not in RESOLUTION_CHOICES:
            raise IQABenchError(f"resolution must be one of {', '.join(RESOLUTION_CHOICES)}, not {resolution!r}.")
        self.resolution = resolution

    @staticmethod
    def _folders(resolution: str) -> list[str]:
        """Where an unpacked archive puts the images of one resolution."""
        return [resolution, f"koniq10k_{resolution}/{resolution}"]

    def image_resolution(self, root: Path) -> str:
        """The resolution read: the one asked for, or with "auto" the first whose folder exists."""
        if self.resolution != "auto":
            return self.resolution
        present = [r for r in RESOLUTIONS if any((root / f).is_dir() for f in self._folders(r))]
        return present[0] if present else RESOLUTIONS[0]

    def image_folders(self, root: Path) -> list[str]:
        return self._folders(self.image_resolution(root))

    def load(self) -> DatasetIndex:
        index = super().load()
        assert self.root is not None
        chosen = self.image_resolution(self.root)
        if not any((self.root / folder).is_dir() for folder in self._folders(chosen)):
            return index  # e.g. the Data-DeQA-Score layout, images/
        if self.resolution == "auto" and chosen != RESOLUTIONS[0]:
            index.provenance.warn(
                f"KonIQ: {RESOLUTIONS[0]}/ not found, images read from {chosen}/; the papers score the "
                f"{RESOLUTIONS[0]} images, so the numbers are not comparable with theirs (set resolution={chosen} "
                f"to choose it explicitly, or add {RESOLUTIONS[0]}/)"
            )
        else:
            index.provenance.notes.append(f"images read from {chosen}/ (resolution={self.resolution})")
        return index

    def read_labels(self, root: Path) -> Labels | None:
        sets = first_existing(root, (SETS_FILE, f"metadata/{SETS_FILE}"))
        if sets is not None:
            labels = self._read_csv(sets, root, mos_column="MOS", split_column="set")
            return Labels(labels, [str(sets)], ["MOS on the 0-100 scale from the sets csv; SD is on the 1-5 scale"])
        scores = first_existing(root, (SCORES_FILE, f"metadata/{SCORES_FILE}"))
        if scores is None:
            return None
        return Labels(
            self._read_csv(scores, root, mos_column="MOS_zscore"),
            [str(scores)],
            ["MOS_zscore (0-100 scale, as the papers' gt_score) from the scores csv; SD is on the 1-5 scale; "
             f"no official split without {SETS_FILE}"],
        )

    def default_split_source(self, labels: Labels | None) -> str:
        if labels is not None and all(label.split is not None for label in labels.labels):
            return "official"
        return "random"

    def _read_csv(self, path: Path, root: Path, mos_column: str, split_column: str | None = None) -> list[Label]:
        """Labels from either official csv: the MOS and split columns differ, the rest is shared."""
        required = ("image_name", mos_column, "SD") + ((split_column,) if split_column else ())
        folder = self.image_resolution(root)
        labels = []
        for line, row in read_csv_rows(path, required):
            where = f"{path}, line {line}"
            labels.append(
                Label(
                    name=row["image_name"].strip(),
                    mos_raw=to_float(row[mos_column], where),
                    std_raw=to_float(row["SD"], where),
                    folder=folder,
                    split=self._official_split(row[split_column], path) if split_column else None,
                    source=where,
                )
            )
        return labels

    @staticmethod
    def _official_split(value: str, path: Path) -> str:
        try:
            return OFFICIAL_SPLITS[value.strip().lower()]
        except KeyError:
            raise IQABenchError(
                f"{path}: unknown set {value!r}; expected one of {', '.join(OFFICIAL_SPLITS)}."
            ) from None
