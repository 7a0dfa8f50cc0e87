"""SPAQ (Fang et al., CVPR 2020): 11,125 smartphone photos from 66 phones, MOS 0-100.

Official release (github.com/h4nwei/SPAQ): ``Annotations/MOS and Image
attribute scores.xlsx`` (columns "Image name", "MOS", then the attribute
scores) and the images in ``TestImage/``. The workbook's sheet name is not
documented; the first sheet is read.
"""

from __future__ import annotations

from pathlib import Path

from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import read_xlsx_table, to_float

LABEL_FILE = "Annotations/MOS and Image attribute scores.xlsx"


class SPAQ(OfficialDataset):
    """SPAQ: smartphone photos, MOS 0-100 (higher is better); no official split.

    ``split_source="auto"`` is the DeQA metas (``train_spaq_9k``,
    ``test_spaq_2k``) when present, else a seeded random 8:2 split by image.
    Other parameters: see :class:`~iqabench_plugins.datasets.official.OfficialDataset`.
    """

    name = "spaq"
    title = "SPAQ"
    default_dir = "spaq"
    homepage = "https://github.com/h4nwei/SPAQ"
    download = DOWNLOADS["spaq"]
    expected_files = (
        LABEL_FILE,
        "TestImage/*.jpg",
        "or instead: metas/train_spaq_9k.json, metas/test_spaq_2k.json and images/ (Data-DeQA-Score SPAQ)",
    )
    official_count = 11125
    default_test_split = "test"
    nominal_range = (0.0, 100.0)
    direction = "higher_better"
    meta_key = "spaq"
    auto_split = "random"
    marker_files = (LABEL_FILE,)
    nested_dirs = ("SPAQ",)

    def image_folders(self, root: Path) -> list[str]:
        return ["TestImage"]

    def read_labels(self, root: Path) -> Labels | None:
        path = root / LABEL_FILE
        if not path.is_file():
            return None
        labels = [
            Label(
                name=str(row["Image name"]).strip(),
                mos_raw=to_float(row["MOS"], f"{path}, row {number}"),
                folder="TestImage",
                source=f"{path}, row {number}",
            )
            for number, row in read_xlsx_table(path, None, ("Image name", "MOS"))
        ]
        return Labels(labels, [str(path)])
