"""AGIQA-3K (Li et al., TCSVT 2023): 2,982 AI-generated images with quality and alignment MOS.

Official release (github.com/lcysyzxdxc/AGIQA-3k-Database): ``data.csv``
(name, prompt, adj1, adj2, style, mos_quality, std_quality, mos_align,
std_align) and the images. The archive's image folder name is not documented;
the images are looked for in the root and in each of its sub-folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError
from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.files import list_subfolders
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import read_csv_rows, to_float

LABEL_FILE = "data.csv"
COLUMNS = {"quality": ("mos_quality", "std_quality"), "alignment": ("mos_align", "std_align")}


class AGIQA3k(OfficialDataset):
    """AGIQA-3K: AI-generated images, MOS 0-5 (observed 0-4.49, higher is better).

    Parameters
    ----------
    label:
        ``"quality"`` (default; what the papers report) or ``"alignment"``
        (text-image alignment MOS).
    split_source, meta_dir, seed, test_fraction:
        See :class:`~iqabench_plugins.datasets.official.OfficialDataset`;
        ``"auto"`` is the DeQA meta (``test_agiqa_3k``) when present, else the
        whole set (out-of-domain test).
    """

    name = "agiqa3k"
    title = "AGIQA"
    default_dir = "agiqa3k"
    homepage = "https://github.com/lcysyzxdxc/AGIQA-3k-Database"
    download = DOWNLOADS["agiqa3k"]
    expected_files = (
        f"{LABEL_FILE} (name, ..., mos_quality, std_quality, mos_align, std_align)",
        "the images, in the root or one sub-folder (e.g. AGIQA-3K/AttnGAN_normal_000.jpg)",
        "or instead: metas/test_agiqa_3k.json and images/ (Data-DeQA-Score AGIQA3K)",
    )
    official_count = 2982
    default_test_split = "all"
    nominal_range = (0.0, 5.0)
    direction = "higher_better"
    meta_key = "agiqa"
    auto_split = "all"
    marker_files = (LABEL_FILE,)
    nested_dirs = ("AGIQA-3K", "AGIQA3K")

    def __init__(self, root: str | os.PathLike | None = None, *, label: str = "quality", **options: Any) -> None:
        super().__init__(root, **options)
        if label not in COLUMNS:
            raise IQABenchError(f"label must be 'quality' or 'alignment', not {label!r}.")
        self.label = label

    def image_folders(self, root: Path) -> list[str]:
        return ["."] + [sub for sub in list_subfolders(root) if sub != "metas"]

    def read_labels(self, root: Path) -> Labels | None:
        path = root / LABEL_FILE
        if not path.is_file():
            return None
        mos_column, std_column = COLUMNS[self.label]
        labels = [
            Label(
                name=row["name"].strip(),
                mos_raw=to_float(row[mos_column], f"{path}, line {line}"),
                std_raw=to_float(row[std_column], f"{path}, line {line}") if row.get(std_column) else None,
                folder=".",
                source=f"{path}, line {line}",
            )
            for line, row in read_csv_rows(path, ("name", mos_column))
        ]
        return Labels(labels, [str(path)], [f"label: {mos_column}"])
