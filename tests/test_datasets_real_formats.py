"""The dataset loaders on the label files exactly as their owners distribute them (``../shared/data/real-formats``).

The expectations are computed here from the raw files with ``csv`` / ``json``
and the published min-max formula, never by the code under test. The images
are not shared: each test writes an empty placeholder file for every listed
name (indexing never decodes an image), in the layout the test is about.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import pytest

from iqabench.contracts.dataset import DatasetWarning, MissingImagesWarning
from iqabench.data.check import check_datasets
from iqabench.errors import IQABenchError
from iqabench_plugins.datasets import CSIQ, TID2013, AGIQA3k, DeqaMetaDataset, KonIQ10k

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-formats"

pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason="real label files in ../shared/data not present (a user's clone has none)"
)


def touch_all(folder: Path, names) -> None:
    """Empty placeholder images: hard links to one empty file (a single system call each)."""
    folder.mkdir(parents=True, exist_ok=True)
    blank = folder.parent / ".placeholder"
    blank.touch()
    for name in names:
        os.link(blank, folder / name)


def min_max(values: list[float], lower_better: bool = False):
    """DeQA-Score's / VisualQuality-R1's formula over ``values``; for DMOS the best (lowest) maps to 5."""
    lo, hi = min(values), max(values)

    def rescale(value: float) -> float:
        unit = (value - lo) / (hi - lo)
        return 1 + 4 * ((1 - unit) if lower_better else unit)

    return rescale


def load_complete(dataset):
    """Load, failing on a missing-images warning: every placeholder was written."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingImagesWarning)
        return dataset.load()


def koniq_rows() -> list[dict[str, str]]:
    with open(REAL / "koniq10k" / "koniq10k_distributions_sets.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def csiq_labels() -> list[tuple[str, float]]:
    lines = (REAL / "csiq" / "csiq_label.txt").open()
    return [(name, float(value)) for name, value in (line.split() for line in lines)]


def qalign(name: str) -> list[dict]:
    return json.loads((REAL / "qalign-test-jsons" / name).read_text())


def koniq_root(tmp_path: Path, folder: str) -> Path:
    """KonIQ's official label file next to empty image files of every row in ``folder``."""
    root = tmp_path / "koniq10k"
    root.mkdir()
    shutil.copy(REAL / "koniq10k" / "koniq10k_distributions_sets.csv", root)
    touch_all(root / folder, [r["image_name"] for r in koniq_rows()])
    return root


def test_koniq_sets_csv(tmp_path):
    rows = koniq_rows()
    root = koniq_root(tmp_path, "1024x768")
    index = load_complete(KonIQ10k(root))
    mos = [float(r["MOS"]) for r in rows]
    assert len(index.records) == len(rows) == 10073
    assert index.provenance.splits == {"train": 7058, "val": 1000, "test": 2015}  # the official split, as published
    assert index.provenance.direction == "higher_better" and index.provenance.split_source == "official"
    assert (index.provenance.rescale_min, index.provenance.rescale_max) == (min(mos), max(mos))
    split_word = {"training": "train", "validation": "val", "test": "test"}
    rescale = min_max(mos)
    assert [r.image for r in index.records] == [f"1024x768/{row['image_name']}" for row in rows]
    assert [r.split for r in index.records] == [split_word[row["set"]] for row in rows]
    assert [r.std_raw for r in index.records] == [float(row["SD"]) for row in rows]
    assert [r.mos for r in index.records] == pytest.approx([rescale(float(row["MOS"])) for row in rows], abs=1e-12)
    # VisualQuality-R1's KONIQ-10K_test_all.txt holds 4.479 for this image (anchors section 2.3)
    assert next(r for r in index.records if r.image.endswith("/10004473376.jpg")).mos == pytest.approx(4.479, abs=5e-4)


def test_koniq_with_only_the_512x384_folder(tmp_path):
    root = koniq_root(tmp_path, "512x384")
    with pytest.warns(DatasetWarning, match=r"1024x768/ not found, images read from 512x384/"):
        index = load_complete(KonIQ10k(root))
    assert {r.image.split("/")[0] for r in index.records} == {"512x384"} and len(index.records) == 10073
    explicit = load_complete(KonIQ10k(root, resolution="512x384"))  # chosen on purpose: no warning
    assert not explicit.provenance.warnings
    assert "images read from 512x384/ (resolution=512x384)" in explicit.provenance.notes


def test_agiqa_data_csv_quality_and_alignment(tmp_path):
    with open(REAL / "agiqa3k" / "data.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    root = tmp_path / "agiqa3k"
    root.mkdir()
    shutil.copy(REAL / "agiqa3k" / "data.csv", root)
    touch_all(root / "AGIQA-3K", [r["name"] for r in rows])
    for label, column in (("quality", "mos_quality"), ("alignment", "mos_align")):
        index = load_complete(AGIQA3k(root, label=label))
        values = [float(r[column]) for r in rows]
        assert len(index.records) == len(rows) == 2982
        assert (index.provenance.rescale_min, index.provenance.rescale_max) == (min(values), max(values))
        assert [r.image for r in index.records] == [f"AGIQA-3K/{row['name']}" for row in rows]
        assert [r.mos for r in index.records] == pytest.approx(list(map(min_max(values), values)), abs=1e-12)
    assert (min(float(r["mos_quality"]) for r in rows),
            round(max(float(r["mos_quality"]) for r in rows), 2)) == (0.0, 4.49)


@pytest.mark.parametrize("layout", ["flat dst_imgs_all", "official dst_imgs/<type>"])
def test_csiq_label_txt_is_dmos_flipped(tmp_path, layout):
    labels = csiq_labels()
    root = tmp_path / "csiq"
    root.mkdir()
    shutil.copy(REAL / "csiq" / "csiq_label.txt", root)
    if layout == "flat dst_imgs_all":
        touch_all(root / "dst_imgs_all", [name for name, _ in labels])
        folder_of = {name: "dst_imgs_all" for name, _ in labels}
    else:  # dst_imgs/awgn/1600.AWGN.1.png: the folder is the distortion word, lower case
        folder_of = {name: f"dst_imgs/{name.split('.')[1].lower()}" for name, _ in labels}
        for name, folder in folder_of.items():
            touch_all(root / folder, [name])
    index = load_complete(CSIQ(root))
    dmos = [value for _, value in labels]
    assert len(index.records) == len(labels) == 866
    assert index.provenance.direction == "lower_better" and index.provenance.splits == {"all": 866}
    assert [r.image for r in index.records] == [f"{folder_of[name]}/{name}" for name, _ in labels]
    assert [r.mos_raw for r in index.records] == dmos
    assert [r.mos for r in index.records] == pytest.approx(list(map(min_max(dmos, lower_better=True), dmos)), abs=1e-12)
    best = min(labels, key=lambda item: item[1])[0]
    assert next(r for r in index.records if r.image.endswith(best)).mos == pytest.approx(5.0)
    # type and level as the file names give them (1600.AWGN.1.png), the type as the dst_imgs folder spells it:
    # 30 references x 5 levels of five types, and contrast with 116 images (4 or 5 levels)
    assert [(r.distortion["type"], r.distortion["level"]) for r in index.records] == [
        ({"awgn": "awgn", "blur": "blur", "contrast": "contrast", "fnoise": "fnoise", "jpeg": "jpeg",
          "jpeg2000": "jpeg2000"}[name.split(".")[1].lower()], int(name.split(".")[2])) for name, _ in labels]
    assert Counter(r.distortion["type"] for r in index.records) == {
        "awgn": 150, "blur": 150, "fnoise": 150, "jpeg": 150, "jpeg2000": 150, "contrast": 116}


def test_tid2013_mos_with_names(tmp_path):
    lines = [line.split() for line in (REAL / "tid2013" / "mos_with_names.txt").read_text().splitlines()]
    root = tmp_path / "tid2013"
    root.mkdir()
    shutil.copy(REAL / "tid2013" / "mos_with_names.txt", root)
    touch_all(root / "distorted_images", [name for _, name in lines])
    index = load_complete(TID2013(root))
    mos = [float(value) for value, _ in lines]
    assert len(index.records) == len(lines) == 3000
    assert (index.provenance.rescale_min, index.provenance.rescale_max) == (min(mos), max(mos))
    assert [r.image for r in index.records] == [f"distorted_images/{name}" for _, name in lines]
    assert [r.mos for r in index.records] == pytest.approx(list(map(min_max(mos), mos)), abs=1e-12)
    assert len({r.reference for r in index.records}) == 25  # i01 and I01 are one reference
    assert Counter(r.reference for r in index.records)["I01"] == 120
    # i01_08_3.bmp: type 8 (Gaussian blur), level 3; 24 types x 5 levels x 25 references
    types = Counter(r.distortion["type"] for r in index.records)
    assert len(types) == 24 and set(types.values()) == {125}
    assert Counter(r.distortion["level"] for r in index.records) == dict.fromkeys(range(1, 6), 600)
    blur = next(r for r in index.records if r.image.lower().endswith("i01_08_3.bmp"))
    assert blur.distortion == {"type": "gaussian_blur", "level": 3}
    assert [r.distortion["level"] for r in index.records] == [int(name[-5]) for _, name in lines]


@pytest.mark.parametrize(
    "meta, folder",
    [
        ("test_koniq.json", "1024x768"),
        ("test_spaq.json", "TestImage"),
        ("test_kadid.json", "images"),
        ("livec.json", "Images"),
        ("agi.json", "AGIQA-3K"),
    ],
)
def test_qalign_lists_as_deqa_meta_with_the_dataset_s_own_layout(tmp_path, meta, folder):
    # The lists name `koniq/x.jpg`, `livec/x.bmp`, `agi-cgi/x.jpg`... relative to a parent folder; the images are
    # in the dataset's own layout: found by file name under the root.
    records = qalign(meta)
    root = tmp_path / "dataset"
    touch_all(root / folder, [(r.get("image") or r["img_path"]).rpartition("/")[2] for r in records])
    shutil.copy(REAL / "qalign-test-jsons" / meta, tmp_path / meta)
    index = load_complete(DeqaMetaDataset(root, meta=str(tmp_path / meta)))
    # test_kadid.json has no gt_score: the score is the id's "name->score"
    scores = [float(r["gt_score"]) if "gt_score" in r else float(r["id"].rpartition("->")[2]) for r in records]
    assert len(index.records) == len(records)
    assert {r.split for r in index.records} == {"test"}
    assert [r.image for r in index.records] == [
        f"{folder}/{(raw.get('image') or raw['img_path']).rpartition('/')[2]}" for raw in records
    ]
    assert [r.mos_raw for r in index.records] == scores
    assert [r.mos for r in index.records] == pytest.approx(list(map(min_max(scores), scores)), abs=1e-12)


def make_csiq_with_qalign_meta(root: Path) -> tuple[list[tuple[str, float]], list[dict]]:
    labels = csiq_labels()
    root.mkdir()
    shutil.copy(REAL / "csiq" / "csiq_label.txt", root)
    touch_all(root / "dst_imgs_all", [name for name, _ in labels])
    (root / "metas").mkdir()
    shutil.copy(REAL / "qalign-test-jsons" / "csiq.json", root / "metas" / "test_csiq_750.json")
    return labels, qalign("csiq.json")


def test_qalign_csiq_list_warns_about_files_csiq_does_not_contain(tmp_path):
    labels, meta = make_csiq_with_qalign_meta(tmp_path / "csiq")
    official = {name.lower(): value for name, value in labels}
    names = [r["image"].rpartition("/")[2] for r in meta]
    strangers = [n for n in names if n.lower() not in official]
    differing = [
        n for n, r in zip(names, meta)
        if n.lower() in official and abs(r["gt_score"] - official[n.lower()]) > 0.0005 + 1e-9  # 3 decimals printed
    ]
    assert (len(meta), len(strangers)) == (750, 34)
    with pytest.warns(DatasetWarning) as caught:
        index = CSIQ(tmp_path / "csiq").load()
    messages = [str(w.message) for w in caught]
    assert any(f"{len(strangers)} of 750 meta records name images that are not in the official labels" in m
               for m in messages)
    assert any(f"differs from the official label for {len(differing)} of {750 - len(strangers)}" in m
               for m in messages)
    assert len(index.records) == 750 and index.provenance.direction == "lower_better"
    assert len(index.provenance.warnings) == 2  # kept with the provenance, for results and `data check`
    assert any(n.startswith("direction of the metas checked: Spearman correlation +") for n in index.provenance.notes)
    # the official range [0, 1] rescales the meta, flipped: DMOS 0 is 5
    assert [r.mos for r in index.records] == pytest.approx([1 + 4 * (1.0 - r["gt_score"]) for r in meta], abs=1e-12)
    (row,) = check_datasets(tmp_path, ["csiq"])
    assert "34 image files missing" in row["problem"] and "34 of 750 meta records" in row["problem"]


def test_a_meta_running_against_the_official_labels_stops_the_load(tmp_path):
    labels, _ = make_csiq_with_qalign_meta(tmp_path / "csiq")
    flipped = [{"image": f"dst_imgs_all/{name}", "gt_score": round(1 - value, 6)} for name, value in labels]
    (tmp_path / "csiq" / "metas" / "test_csiq_750.json").unlink()
    (tmp_path / "csiq" / "metas" / "test_csiq_866.json").write_text(json.dumps(flipped))
    with pytest.raises(IQABenchError, match=r"do not run the way of the official labels.*Spearman correlation -1\.000"):
        CSIQ(tmp_path / "csiq").load()
