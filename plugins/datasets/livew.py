"""LIVE In the Wild Image Quality Challenge (Ghadiyaram & Bovik, 2016): 1,169 photos, MOS 0-100.

Official release (ChallengeDB_release): ``Data/AllImages_release.mat``
(variable ``AllImages_release``, a cell array of file names),
``Data/AllMOS_release.mat`` (``AllMOS_release``), ``Data/AllStdDev_release.mat``
(``AllStdDev_release``) and the images in ``Images/``, the first seven
(``t1.bmp`` .. ``t7.bmp``) being the raters' training images in
``Images/trainingImages/``. Most works drop those seven (1,162 left).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from iqabench.api import IQABenchError
from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset

NAMES_FILE = "Data/AllImages_release.mat"
MOS_FILE = "Data/AllMOS_release.mat"
STD_FILE = "Data/AllStdDev_release.mat"
TRAINING_IMAGES = 7


def _mat_variable(path: Path, variable: str) -> np.ndarray:
    from scipy.io import loadmat

    content = loadmat(path)
    if variable not in content:
        found = ", ".join(k for k in content if not k.startswith("__"))
        raise IQABenchError(f"{path} has no variable {variable!r} (it has {found}); is it the official release?")
    return content[variable]


def _strings(cell_array: np.ndarray) -> list[str]:
    """File names from a MATLAB cell array of strings, whatever its orientation."""
    names = []
    for item in np.asarray(cell_array, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0]
        names.append(str(item).strip())
    return names


class LiveWild(OfficialDataset):
    """LIVE Challenge / LIVE-Wild (CLIVE): in-the-wild photos, MOS 0-100 (higher is better).

    Parameters
    ----------
    drop_training_images:
        Drop the 7 raters' training images t1..t7 (default True, as in most
        works: 1,162 images). Not applied to DeQA metas, whose lists are used as
        they are.
    split_source, meta_dir, seed, test_fraction:
        See :class:`~iqabench_plugins.datasets.official.OfficialDataset`;
        ``"auto"`` is the DeQA meta (``test_livew_1k``) when present, else the
        whole set (out-of-domain test).
    """

    name = "livew"
    title = "LIVE-W"
    default_dir = "livew"
    homepage = "https://live.ece.utexas.edu/research/ChallengeDB/index.html"
    download = DOWNLOADS["livew"]
    expected_files = (
        NAMES_FILE,
        MOS_FILE,
        f"{STD_FILE} (optional)",
        "Images/*.bmp|jpg and Images/trainingImages/t1.bmp ... t7.bmp",
        "or instead: metas/test_livew_1k.json and images/ (Data-DeQA-Score LIVE-WILD)",
    )
    official_count = 1169
    default_test_split = "all"
    nominal_range = (0.0, 100.0)
    direction = "higher_better"
    meta_key = "livew"
    auto_split = "all"
    marker_files = (NAMES_FILE, MOS_FILE)
    nested_dirs = ("ChallengeDB_release", "LIVE-WILD", "LIVEC")  # LIVEC/: pyiqa's live_challenge.tgz

    def __init__(
        self, root: str | os.PathLike | None = None, *, drop_training_images: bool = True, **options: Any
    ) -> None:
        super().__init__(root, **options)
        if not isinstance(drop_training_images, bool):
            raise IQABenchError(f"drop_training_images must be true or false, not {drop_training_images!r}.")
        self.drop_training_images = drop_training_images

    def image_folders(self, root: Path) -> list[str]:
        return ["Images", "Images/trainingImages"]

    def expected_count(self) -> int | None:
        return self.official_count - TRAINING_IMAGES if self.drop_training_images else self.official_count

    def read_labels(self, root: Path) -> Labels | None:
        names_path, mos_path, std_path = root / NAMES_FILE, root / MOS_FILE, root / STD_FILE
        if not (names_path.is_file() and mos_path.is_file()):
            return None
        names = _strings(_mat_variable(names_path, "AllImages_release"))
        mos = np.asarray(_mat_variable(mos_path, "AllMOS_release"), dtype=float).ravel()
        std = np.asarray(_mat_variable(std_path, "AllStdDev_release"),
                         dtype=float).ravel() if std_path.is_file() else None
        if len(mos) != len(names) or (std is not None and len(std) != len(names)):
            raise IQABenchError(
                f"{names_path.name} lists {len(names)} images but {mos_path.name} has {len(mos)} scores"
                + ("" if std is None else f" and {std_path.name} {len(std)}")
                + "; the files are from different releases."
            )
        files = [str(names_path), str(mos_path)] + ([str(std_path)] if std is not None else [])
        labels = [
            Label(
                name=name,
                mos_raw=float(mos[i]),
                std_raw=None if std is None else float(std[i]),
                folder="Images/trainingImages" if i < TRAINING_IMAGES else "Images",
                source=f"{names_path}, entry {i + 1}",
            )
            for i, name in enumerate(names)
        ]
        return Labels(labels, files)

    def official_subset(self, labels: Labels) -> Labels:
        if not self.drop_training_images:
            return labels
        dropped = labels.labels[:TRAINING_IMAGES]
        note = (
            f"dropped the first {TRAINING_IMAGES} entries, the raters' training images "
            f"({', '.join(label.name for label in dropped)}); drop_training_images=False keeps them"
        )
        return Labels(labels.labels[TRAINING_IMAGES:], labels.files, [*labels.notes, note])
