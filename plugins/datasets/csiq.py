"""CSIQ (Larson & Chandler, 2010): 30 references x 6 distortions x 4-5 levels = 866 images, DMOS 0-1.

Official release: ``csiq.DMOS.xlsx`` with sheet ``all_by_image`` (a title
block, then a header row with image, dst_idx, dst_type, dst_lev, dmos_std,
dmos), reference images in ``src_imgs/`` and distorted ones in
``dst_imgs/<type>/<image>.<TYPE>.<level>.png``, e.g.
``dst_imgs/awgn/1600.AWGN.1.png``. DMOS: lower is better, so it is flipped.
The widely used derived ``csiq_label.txt`` ("<file> <dmos>" per line, 866
lines) is accepted when the workbook is absent; it usually comes with every
distorted image in one flat folder, ``dst_imgs_all/``, which is searched too.

Every record carries its ``distortion``: the type as the release's ``dst_imgs/``
folder names it (awgn, blur, contrast, fnoise, jpeg, jpeg2000) and the level
(1 mildest), read from the file name, which every source (workbook, derived
list, DeQA meta) shares.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError
from iqabench_plugins.datasets.downloads import DOWNLOADS
from iqabench_plugins.datasets.files import list_subfolders
from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import read_xlsx_table, to_float

LABEL_FILE = "csiq.DMOS.xlsx"
SHEET = "all_by_image"
DERIVED_LABEL_FILE = "csiq_label.txt"
#: the flat folder of all 866 distorted images that accompanies csiq_label.txt
FLAT_IMAGE_DIR = "dst_imgs_all"
#: dst_type in the workbook -> (folder under dst_imgs, type word in the file name)
DISTORTIONS = {
    "noise": ("awgn", "AWGN"),
    "awgn": ("awgn", "AWGN"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
    "fnoise": ("fnoise", "fnoise"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "jpeg2000": ("jpeg2000", "jpeg2000"),
}


#: the type word of a file name (``1600.AWGN.1.png``) -> the type, as the dst_imgs folder names it
_TYPE_OF_WORD = {word.lower(): folder for folder, word in DISTORTIONS.values()}
_DISTORTED_NAME = re.compile(r"^(?P<reference>.+)\.(?P<word>[A-Za-z0-9]+)\.(?P<level>\d+)\.png$", re.IGNORECASE)


def parse_distortion(file_name: str) -> dict[str, Any] | None:
    """``{"type", "level"}`` from a CSIQ file name (``1600.AWGN.1.png``); None for any other name."""
    match = _DISTORTED_NAME.match(Path(file_name).name)
    if match is None or match["word"].lower() not in _TYPE_OF_WORD:
        return None
    return {"type": _TYPE_OF_WORD[match["word"].lower()], "level": int(match["level"])}


def _image_name(value: object) -> str:
    """Workbook cells hold reference names as text or as numbers (1600 may read as 1600.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class CSIQ(OfficialDataset):
    """CSIQ: synthetic distortions, DMOS 0-1 (lower is better; flipped when rescaled).

    ``split_source="auto"`` is the DeQA meta (``test_csiq_866``) when present,
    else the whole set (out-of-domain test); ``"random"`` gives a seeded
    reference-disjoint split. Other parameters: see
    :class:`~iqabench_plugins.datasets.official.OfficialDataset`.
    """

    name = "csiq"
    title = "CSIQ"
    default_dir = "csiq"
    homepage = "https://s2.smu.edu/~eclarson/csiq.html"
    download = DOWNLOADS["csiq"]
    expected_files = (
        f"{LABEL_FILE} (sheet {SHEET}) or {DERIVED_LABEL_FILE}",
        "dst_imgs/<type>/<image>.<TYPE>.<level>.png (awgn, blur, contrast, fnoise, jpeg, jpeg2000), "
        f"or all of them in {FLAT_IMAGE_DIR}/",
        "or instead: metas/test_csiq_866.json and images/ (Data-DeQA-Score CSIQ)",
    )
    official_count = 866
    default_test_split = "all"
    nominal_range = (0.0, 1.0)
    direction = "lower_better"
    meta_key = "csiq"
    auto_split = "all"
    marker_files = (LABEL_FILE, DERIVED_LABEL_FILE)
    nested_dirs = ("CSIQ",)

    def image_folders(self, root: Path) -> list[str]:
        return [f"dst_imgs/{sub}" for sub in list_subfolders(root / "dst_imgs")] + ["dst_imgs", FLAT_IMAGE_DIR]

    def distortion(self, image: str) -> dict[str, Any] | None:
        return parse_distortion(image)

    def read_labels(self, root: Path) -> Labels | None:
        workbook = root / LABEL_FILE
        if workbook.is_file():
            return self._read_workbook(workbook)
        derived = root / DERIVED_LABEL_FILE
        if derived.is_file():
            return self._read_derived(derived)
        return None

    def _read_workbook(self, path: Path) -> Labels:
        labels = []
        for number, row in read_xlsx_table(path, SHEET, ("image", "dst_type", "dst_lev", "dmos")):
            if row["image"] is None:
                continue
            image = _image_name(row["image"])
            where = f"{path} (sheet {SHEET}), row {number}"
            kind = str(row["dst_type"]).strip().lower()
            if kind not in DISTORTIONS:
                raise IQABenchError(
                    f"{where}: unknown dst_type {row['dst_type']!r}; expected one of "
                    f"{', '.join(sorted(DISTORTIONS))}."
                )
            folder, word = DISTORTIONS[kind]
            level = int(to_float(row["dst_lev"], where))
            std = row.get("dmos_std")
            labels.append(
                Label(
                    name=f"{image}.{word}.{level}.png",
                    mos_raw=to_float(row["dmos"], where),
                    std_raw=None if std is None else to_float(std, where),
                    reference=image,
                    folder=f"dst_imgs/{folder}",
                    source=where,
                )
            )
        return Labels(labels, [f"{path} (sheet {SHEET})"])

    def _read_derived(self, path: Path) -> Labels:
        flat = (path.parent / FLAT_IMAGE_DIR).is_dir()
        labels = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise IQABenchError(f"{path}, line {number}: expected '<file> <dmos>', found {line!r}.")
            name = parts[0].rpartition("/")[2]
            word = name.split(".")[1].lower() if name.count(".") >= 3 else ""
            folder = next((f for f, w in DISTORTIONS.values() if w.lower() == word), "")
            labels.append(
                Label(
                    name=name,
                    mos_raw=to_float(parts[1], f"{path}, line {number}"),
                    reference=name.split(".")[0],
                    folder=FLAT_IMAGE_DIR if flat else f"dst_imgs/{folder}" if folder else "dst_imgs",
                    source=f"{path}, line {number}",
                )
            )
        return Labels(labels, [str(path)], [f"labels from the derived {DERIVED_LABEL_FILE}, not the official workbook"])
