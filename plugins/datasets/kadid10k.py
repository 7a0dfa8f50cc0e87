"""KADID-10k (Lin et al., QoMEX 2019): 81 references x 25 distortions x 5 levels = 10,125 images.

Official release (database.mmsp-kn.de): ``dmos.csv`` (dist_img, ref_img, dmos,
var) and ``images/`` holding both distorted and reference PNGs. Despite its
name the ``dmos`` column is a MOS on 1-5 where higher is better.
"""

from __future__ import annotations

import math
from pathlib import Path

from iqabench_plugins.datasets.official import Label, Labels, OfficialDataset
from iqabench_plugins.datasets.tabular import read_csv_rows, to_float

LABEL_FILE = "dmos.csv"


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
