"""PIPAL (Jinjin et al., ECCV 2020): 200 references, 23,200 distorted images (public training part), Elo scores.

Official release (NTIRE 2021/2022 training set): one label file per reference,
``Train_Label/A0001.txt`` (or ``MOS_Scores_train/A0001.txt`` in the layout of
the PIPAL-dataset repository), lines ``A0001_00_00.bmp,1444.41``; distorted
images in ``Train_Dist/`` or in the four ``Distortion_1`` .. ``Distortion_4``
folders (optionally under ``Distortion/`` or ``training/``), or in ``Dist_Imgs/``
as pyiqa's archive has them; references in
``Train_Ref/`` / ``Reference_train/``. The labels of the validation and test
parts were never published, so only the training part is indexed.

Distorted images are named ``<reference>_<NN>_<MM>.bmp``. The two numbers are
recorded as the names give them, ``{"type": "type NN", "level": MM}``: NN
groups the images made by one kind of distortion or restoration method, MM
tells apart the variants within it; MM is not a severity scale.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError
from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.files import list_files
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import to_float

LABEL_DIRS = ("Train_Label", "MOS_Scores_train", "training/MOS_Scores_train")
#: pyiqa's archive (pipal.tar) unpacks the distorted images to PIPAL/Dist_Imgs (its default_dataset_configs.yml)
DISTORTION_DIRS = ("Train_Dist", "Dist_Imgs") + tuple(
    f"{prefix}Distortion_{i}"
    for prefix in ("", "Distortion/", "training/Distortion/", "training/") for i in range(1, 5)
)


_DISTORTED_NAME = re.compile(r"^A\d{4}_(?P<type>\d{2})_(?P<level>\d{2})\.[A-Za-z0-9]+$")


def parse_distortion(file_name: str) -> dict[str, Any] | None:
    """``{"type": "type NN", "level": MM}`` from a PIPAL file name (``A0001_10_02.bmp``); None for any other."""
    match = _DISTORTED_NAME.match(Path(file_name).name)
    if match is None:
        return None
    return {"type": f"type {match['type']}", "level": int(match["level"])}


class PIPAL(OfficialDataset):
    """PIPAL (public training part): image restoration outputs, Elo scores (higher is better).

    ``split_source="auto"`` is the DeQA metas (``test_pipal_5k``, and
    ``train_pipal_*`` when shipped) when present, else a seeded
    reference-disjoint split. Other parameters: see
    :class:`~iqabench_plugins.datasets.official.OfficialDataset`.
    """

    name = "pipal"
    title = "PIPAL"
    default_dir = "pipal"
    homepage = "https://github.com/HaomingCai/PIPAL-dataset"
    download = DOWNLOADS["pipal"]
    expected_files = (
        "Train_Label/A0001.txt ... (or MOS_Scores_train/), one per reference, lines 'A0001_00_00.bmp,<elo>'",
        "Train_Dist/*.bmp (or Distortion_1..Distortion_4/, or Dist_Imgs/ as in pyiqa's archive)",
        "or instead: metas/test_pipal_5k.json and images/ (Data-DeQA-Score PIPAL)",
    )
    official_count = 23200
    default_test_split = "test"
    nominal_range = None
    direction = "higher_better"
    meta_key = "pipal"
    auto_split = "random"
    marker_files = ()
    nested_dirs = ("PIPAL",)

    def _marked(self, folder: Path) -> bool:
        return super()._marked(folder) or any((folder / d).is_dir() for d in LABEL_DIRS)

    def image_folders(self, root: Path) -> list[str]:
        return [d for d in DISTORTION_DIRS if (root / d).is_dir()] or ["Train_Dist"]

    def distortion(self, image: str) -> dict[str, Any] | None:
        return parse_distortion(image)

    def read_labels(self, root: Path) -> Labels | None:
        label_dir = next((root / d for d in LABEL_DIRS if (root / d).is_dir()), None)
        if label_dir is None:
            return None
        label_files = sorted(n for n in list_files(label_dir) if n.lower().endswith(".txt"))
        if not label_files:
            raise IQABenchError(f"{label_dir} holds no .txt label files; expected A0001.txt ... one per reference.")
        folder = self.image_folders(root)[0]
        labels = []
        for file_name in label_files:
            path = label_dir / file_name
            reference = Path(file_name).stem
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                name, sep, score = line.partition(",")
                if not sep:
                    raise IQABenchError(f"{path}, line {number}: expected '<image>,<elo score>', found {line!r}.")
                labels.append(
                    Label(
                        name=name.strip(),
                        mos_raw=to_float(score.strip(), f"{path}, line {number}"),
                        reference=reference,
                        folder=folder,
                        source=f"{path}, line {number}",
                    )
                )
        return Labels(
            labels,
            [f"{label_dir}/*.txt ({len(label_files)} files)"],
            ["Elo scores; their numeric range is not documented, the observed min/max is used"],
        )
