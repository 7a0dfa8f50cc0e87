"""KADID-10k (Lin et al., QoMEX 2019): 81 references x 25 distortions x 5 levels = 10,125 images.

Official release (database.mmsp-kn.de): ``dmos.csv`` (dist_img, ref_img, dmos,
var) and ``images/`` holding both distorted and reference PNGs. Despite its
name the ``dmos`` column is a MOS on 1-5 where higher is better.

Distorted images are named ``I<ref>_<type>_<level>.png``: two-digit distortion
type (1-25, :data:`KADID_DISTORTION_TYPES`) and level (1 mildest, 5 strongest).
KADIS-700k, the unlabelled companion set, generates its ``dist_imgs/`` with the
same code and the same ``<reference>_<type>_<level>`` names, so
:func:`parse_distortion` reads both. Every record carries its ``distortion``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import read_csv_rows, to_float

LABEL_FILE = "dmos.csv"

#: the 25 distortion types of KADID-10k / KADIS-700k, by their number in file names (Lin et al., 2019, Table 1)
KADID_DISTORTION_TYPES = (
    "gaussian_blur", "lens_blur", "motion_blur", "color_diffusion", "color_shift", "color_quantization",
    "color_saturation_1", "color_saturation_2", "jpeg2000", "jpeg", "white_noise", "white_noise_color_component",
    "impulse_noise", "multiplicative_noise", "denoise", "brighten", "darken", "mean_shift", "jitter",
    "non_eccentricity_patch", "pixelate", "quantization", "color_block", "high_sharpen", "contrast_change",
)
_DISTORTED_NAME = re.compile(r"^(?P<reference>.+)_(?P<type>\d{2})_(?P<level>\d{2})\.[A-Za-z0-9]+$")


def parse_distortion(file_name: str) -> dict[str, Any] | None:
    """``{"type", "level"}`` from a KADID-10k / KADIS-700k file name; None for any other name (a reference)."""
    match = _DISTORTED_NAME.match(Path(file_name).name)
    if match is None:
        return None
    number, level = int(match["type"]), int(match["level"])
    if not (1 <= number <= len(KADID_DISTORTION_TYPES) and 1 <= level <= 5):
        return None
    return {"type": KADID_DISTORTION_TYPES[number - 1], "level": level}


class KADID10k(OfficialDataset):
    """KADID-10k: synthetic distortions, MOS 1-5 (higher is better, the column is called dmos).

    ``split_source="auto"`` is the DeQA metas (``train_kadid_8k``,
    ``test_kadid_2k``) when present, else a seeded reference-disjoint split.
    Other parameters: see :class:`~iqabench_plugins.datasets.official.OfficialDataset`.
    """

    name = "kadid10k"
    title = "KADID"
    default_dir = "kadid10k"
    homepage = "http://database.mmsp-kn.de/kadid-10k-database.html"
    download = DOWNLOADS["kadid10k"]
    expected_files = (
        LABEL_FILE,
        "images/I01_01_01.png ...",
        "or instead: metas/train_kadid_8k.json, metas/test_kadid_2k.json and images/ (Data-DeQA-Score KADID10K)",
    )
    official_count = 10125
    default_test_split = "test"
    nominal_range = (1.0, 5.0)
    direction = "higher_better"
    meta_key = "kadid"
    auto_split = "random"
    marker_files = (LABEL_FILE,)
    nested_dirs = ("kadid10k", "KADID10K")

    def image_folders(self, root: Path) -> list[str]:
        return ["images"]

    def distortion(self, image: str) -> dict[str, Any] | None:
        return parse_distortion(image)

    def read_labels(self, root: Path) -> Labels | None:
        path = root / LABEL_FILE
        if not path.is_file():
            return None
        labels = []
        for line, row in read_csv_rows(path, ("dist_img", "ref_img", "dmos", "var")):
            where = f"{path}, line {line}"
            labels.append(
                Label(
                    name=row["dist_img"].strip(),
                    mos_raw=to_float(row["dmos"], where),
                    std_raw=math.sqrt(to_float(row["var"], where)),
                    reference=row["ref_img"].strip(),
                    folder="images",
                    source=where,
                )
            )
        return Labels(labels, [str(path)], ["std_raw is the square root of the var column"])
