"""TID2013 (Ponomarenko et al., 2015): 25 references x 24 distortions x 5 levels = 3,000 images, MOS 0-9.

Official release: ``mos_with_names.txt`` ("<mos> <file>" per line, e.g.
``5.51429 i01_01_1.bmp``), ``mos_std.txt`` (one std per line, same order),
``distorted_images/`` and ``reference_images/``. The case of file names in the
text file and on disk differs for some images (``i25`` vs ``I25``); names are
matched case-insensitively.

Distorted images are named ``i<reference>_<type>_<level>.bmp``: two-digit
distortion type (1-24, :data:`TID2013_DISTORTION_TYPES`) and one-digit level
(1 mildest to 5 strongest). Every record carries its ``distortion``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError
from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import to_float

LABEL_FILE = "mos_with_names.txt"
STD_FILE = "mos_std.txt"

#: the 24 distortion types of TID2013 by their number in file names (Ponomarenko et al., 2015, Table 1)
TID2013_DISTORTION_TYPES = (
    "additive_gaussian_noise", "additive_noise_in_color_components", "spatially_correlated_noise", "masked_noise",
    "high_frequency_noise", "impulse_noise", "quantization_noise", "gaussian_blur", "image_denoising", "jpeg",
    "jpeg2000", "jpeg_transmission_errors", "jpeg2000_transmission_errors", "non_eccentricity_pattern_noise",
    "local_blockwise_distortions", "mean_shift", "contrast_change", "change_of_color_saturation",
    "multiplicative_gaussian_noise", "comfort_noise", "lossy_compression_of_noisy_images",
    "color_quantization_with_dither", "chromatic_aberrations", "sparse_sampling_and_reconstruction",
)
_DISTORTED_NAME = re.compile(r"^i\d{2}_(?P<type>\d{2})_(?P<level>\d)\.bmp$", re.IGNORECASE)


def parse_distortion(file_name: str) -> dict[str, Any] | None:
    """``{"type", "level"}`` from a TID2013 file name (``i01_08_3.bmp``); None for any other name."""
    match = _DISTORTED_NAME.match(Path(file_name).name)
    if match is None:
        return None
    number, level = int(match["type"]), int(match["level"])
    if not (1 <= number <= len(TID2013_DISTORTION_TYPES) and 1 <= level <= 5):
        return None
    return {"type": TID2013_DISTORTION_TYPES[number - 1], "level": level}


class TID2013(OfficialDataset):
    """TID2013: synthetic distortions, MOS 0-9 (higher is better).

    ``split_source="auto"`` is the DeQA meta (``test_tid2013_3k``) when
    present, else the whole set (out-of-domain test); ``"random"`` gives a
    seeded reference-disjoint split. Other parameters: see
    :class:`~iqabench_plugins.datasets.official.OfficialDataset`.
    """

    name = "tid2013"
    title = "TID2013"
    default_dir = "tid2013"
    homepage = "https://www.ponomarenko.info/tid2013.htm"
    download = DOWNLOADS["tid2013"]
    expected_files = (
        LABEL_FILE,
        f"{STD_FILE} (optional)",
        "distorted_images/i01_01_1.bmp ...",
        "or instead: metas/test_tid2013_3k.json and images/ (Data-DeQA-Score TID2013)",
    )
    official_count = 3000
    default_test_split = "all"
    nominal_range = (0.0, 9.0)
    direction = "higher_better"
    meta_key = "tid2013"
    auto_split = "all"
    marker_files = (LABEL_FILE,)
    nested_dirs = ("tid2013", "TID2013")

    def image_folders(self, root: Path) -> list[str]:
        return ["distorted_images"]

    def distortion(self, image: str) -> dict[str, Any] | None:
        return parse_distortion(image)

    def read_labels(self, root: Path) -> Labels | None:
        path = root / LABEL_FILE
        if not path.is_file():
            return None
        entries = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise IQABenchError(f"{path}, line {number}: expected '<mos> <file name>', found {line!r}.")
            entries.append((to_float(parts[0], f"{path}, line {number}"), parts[1], f"{path}, line {number}"))
        stds: list[float | None] = [None] * len(entries)
        files = [str(path)]
        std_path = root / STD_FILE
        if std_path.is_file():
            values = [to_float(v, str(std_path)) for v in std_path.read_text().split()]
            if len(values) != len(entries):
                raise IQABenchError(f"{std_path} has {len(values)} values but {path} has {len(entries)} images.")
            stds = list(values)
            files.append(str(std_path))
        labels = [
            Label(
                name=name,
                mos_raw=mos,
                std_raw=std,
                reference=name.split("_")[0].upper(),
                folder="distorted_images",
                source=source,
            )
            for (mos, name, source), std in zip(entries, stds)
        ]
        return Labels(labels, files)
