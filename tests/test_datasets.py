"""Tests of the dataset plugins, on tiny copies of the datasets in their official layouts.

File names, column names, sheet names and MATLAB variable names follow the
official releases (see docs/datasets.md); images are 4x3 pixels.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.arange(4 * 3 * 3).reshape(3, 4, 3) * 7 % 256).astype(np.uint8)
    fmt = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    Image.fromarray(pixels).save(path, format=fmt)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def expected_mos(value: float, values: list[float], lower_better: bool = False) -> float:
    """The [1, 5] value by the published formula, computed independently of the plugin."""
    lo, hi = min(values), max(values)
    if lower_better:
        return 1 + 4 * (hi - value) / (hi - lo)
    return 1 + 4 * (value - lo) / (hi - lo)


KONIQ_ROWS = [  # image_name, MOS (0-100), SD, set
    ("826373.jpg", 3.91, 0.5, "training"),
    ("1000.jpg", 40.2, 0.6, "training"),
    ("2000.jpg", 55.0, 0.7, "training"),
    ("3000.jpg", 61.5, 0.4, "validation"),
    ("4000.jpg", 88.39, 0.3, "test"),
    ("5000.jpg", 70.0, 0.8, "test"),
]


def make_koniq(root: Path, images: bool = True) -> Path:
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "set"]
    write_csv(root / "koniq10k_distributions_sets.csv", header,
              [[n, 1, 2, 3, 4, 5, 15, m, s, t] for n, m, s, t in KONIQ_ROWS])
    if images:
        for name, *_ in KONIQ_ROWS:
            write_image(root / "1024x768" / name)
    return root


SPAQ_ROWS = [("00001.jpg", 2.0), ("00002.jpg", 93.67), ("00003.jpg", 45.5), ("00004.jpg", 60.0), ("00005.jpg", 71.25)]


def make_spaq(root: Path) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Sheet1"
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for name, mos in SPAQ_ROWS:
        sheet.append([name, mos, 50, 50, 50, 50, 50])
    (root / "Annotations").mkdir(parents=True)
    workbook.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    for name, _ in SPAQ_ROWS:
        write_image(root / "TestImage" / name)
    return root


# 7 training images then 3 test images; the training MOS extend the range on purpose
LIVEW_ROWS = [(f"t{i}.bmp", 1.0 + i) for i in range(1, 8)] + [("10.JPG", 30.5), ("100.bmp", 92.43), ("1000.JPG", 3.42)]


def make_livew(root: Path) -> Path:
    from scipy.io import savemat

    names = np.empty((len(LIVEW_ROWS), 1), dtype=object)
    for i, (name, _) in enumerate(LIVEW_ROWS):
        names[i, 0] = np.array([name])
    (root / "Data").mkdir(parents=True)
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[m for _, m in LIVEW_ROWS]])})
    savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.array([[10.0] * len(LIVEW_ROWS)])})
    for name, _ in LIVEW_ROWS:
        folder = "Images/trainingImages" if name.startswith("t") else "Images"
        write_image(root / folder / name)
    return root


def make_kadid(root: Path, references: int = 10) -> Path:
    rows = []
    for ref in range(1, references + 1):
        for dist in (1, 2):
            rows.append([f"I{ref:02d}_{dist:02d}_01.png", f"I{ref:02d}.png", round(1.0 + ref * 0.3 + dist * 0.1, 3),
                         0.25])
    write_csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)
    for row in rows:
        write_image(root / "images" / row[0])
    return root


CSIQ_ROWS = [  # image, dst_type, dst_lev, dmos_std, dmos, file on disk
    (1600, "noise", 1, 0.02, 0.062, "dst_imgs/awgn/1600.AWGN.1.png"),
    (1600, "jpeg 2000", 3, 0.03, 0.35, "dst_imgs/jpeg2000/1600.jpeg2000.3.png"),
    ("aerial_city", "blur", 5, 0.05, 0.95, "dst_imgs/blur/aerial_city.BLUR.5.png"),
    ("aerial_city", "contrast", 2, 0.04, 0.0, "dst_imgs/contrast/aerial_city.contrast.2.png"),
    ("boston", "jpeg", 1, 0.01, 0.12, "dst_imgs/jpeg/boston.jpeg.1.png"),  # lower-case on disk
    ("boston", "fnoise", 4, 0.02, 0.61, "dst_imgs/fnoise/boston.fnoise.4.png"),
]


def make_csiq(root: Path) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.title = "all_by_distortion"
    sheet = workbook.create_sheet("all_by_image")
    sheet.append([None, "CSIQ DMOS"])
    sheet.append([])
    sheet.append([None, "sorted by image"])
    sheet.append([None, "image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    for image, kind, level, std, dmos, _ in CSIQ_ROWS:
        sheet.append([None, image, 1, kind, level, std, dmos])
    root.mkdir(parents=True, exist_ok=True)
    workbook.save(root / "csiq.DMOS.xlsx")
    for *_, path in CSIQ_ROWS:
        write_image(root / path)
    return root


TID_ROWS = [(5.51429, "i01_01_1.bmp"), (0.24, "i01_02_5.bmp"), (7.21, "i02_01_1.bmp"), (3.3, "i25_01_1.bmp")]


def make_tid2013(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mos_with_names.txt").write_text("".join(f"{m} {n}\n" for m, n in TID_ROWS))
    (root / "mos_std.txt").write_text("".join(f"{0.1 * (i + 1):.1f}\n" for i in range(len(TID_ROWS))))
    for _, name in TID_ROWS:
        on_disk = name.upper().replace(".BMP", ".bmp") if name.startswith("i25") else name  # I25_01_1.bmp
        write_image(root / "distorted_images" / on_disk)
    return root


PIPAL_ROWS = {
    "A0001": [("A0001_00_00.bmp", 1444.41), ("A0001_01_03.bmp", 1210.0)],
    "A0002": [("A0002_00_00.bmp", 1601.5), ("A0002_10_02.bmp", 987.25)],
    "A0003": [("A0003_00_00.bmp", 1500.0)],
}


def make_pipal(root: Path) -> Path:
    (root / "Train_Label").mkdir(parents=True)
    for reference, rows in PIPAL_ROWS.items():
        (root / "Train_Label" / f"{reference}.txt").write_text("".join(f"{n},{s}\n" for n, s in rows))
        for name, _ in rows:
            write_image(root / "Train_Dist" / name)
    return root


AGIQA_ROWS = [("AttnGAN_normal_000.jpg", 0.0, 0.5, 1.2), ("midjourney_lowstep_001.jpg", 4.49, 0.3, 3.9),
              ("sd1.5_high_002.jpg", 2.7, 0.4, 0.02)]


def make_agiqa(root: Path) -> Path:
    header = ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align"]
    write_csv(root / "data.csv", header, [[n, "a cat", "", "", "", q, s, a, 0.1] for n, q, s, a in AGIQA_ROWS])
    for name, *_ in AGIQA_ROWS:
        write_image(root / "AGIQA-3K" / name)
    return root


def write_meta(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))


# ---------------------------------------------------------------------------------------------------------------------
# tests

import math  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402

from iqabench.contracts.dataset import MissingImagesWarning  # noqa: E402
from iqabench.errors import DatasetNotFoundError, IQABenchError  # noqa: E402
from iqabench.registry.discovery import default_registry  # noqa: E402
from iqabench.registry.factory import create_dataset  # noqa: E402
from iqabench.registry.options import check_options  # noqa: E402
from iqabench_plugins.datasets import (  # noqa: E402
    CSIQ,
    PIPAL,
    SPAQ,
    TID2013,
    AGIQA3k,
    DeqaMetaDataset,
    KADID10k,
    KonIQ10k,
    LiveWild,
)


def load_quietly(dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingImagesWarning)  # a complete fixture must not warn
        return dataset.load()


def by_name(index):
    return {r.image.rpartition("/")[2]: r for r in index.records}


def test_all_nine_are_registered_with_their_table_names():
    registry = default_registry()
    titles = {name: registry.dataset(name).title for name in registry.names("dataset")}
    expected = {"koniq10k": "KonIQ", "spaq": "SPAQ", "livew": "LIVE-W", "kadid10k": "KADID", "csiq": "CSIQ",
                "tid2013": "TID2013", "pipal": "PIPAL", "agiqa3k": "AGIQA", "deqa-meta": "DeQA meta"}
    assert {k: titles[k] for k in expected} == expected
    counts = {n: registry.dataset(n).official_count for n in expected if n != "deqa-meta"}
    assert counts == {"koniq10k": 10073, "spaq": 11125, "livew": 1169, "kadid10k": 10125, "csiq": 866,
                      "tid2013": 3000, "pipal": 23200, "agiqa3k": 2982}


def test_koniq_official_split_and_rescale(tmp_path):
    index = load_quietly(KonIQ10k(make_koniq(tmp_path / "koniq10k")))
    values = [m for _, m, _, _ in KONIQ_ROWS]
    records = by_name(index)
    for name, mos, sd, split in KONIQ_ROWS:
        record = records[name]
        assert record.image == f"1024x768/{name}"
        assert record.mos_raw == mos and record.std_raw == sd
        assert record.mos == pytest.approx(expected_mos(mos, values))
        assert record.split == {"training": "train", "validation": "val", "test": "test"}[split]
    assert index.provenance.split_source == "official"
    assert index.provenance.splits == {"train": 3, "val": 1, "test": 2}
    assert (index.provenance.rescale_min, index.provenance.rescale_max) == (3.91, 88.39)
    # the anchor's hand check: 77.38 on [3.91, 88.39] -> 4.479
    assert 1 + 4 * (77.38 - 3.91) / (88.39 - 3.91) == pytest.approx(4.479, abs=1e-3)
    assert any("differs from the official count 10073" in n for n in index.provenance.notes)


def test_koniq_missing_images_are_listed_and_kept(tmp_path):
    root = make_koniq(tmp_path / "koniq10k")
    (root / "1024x768" / "1000.jpg").unlink()
    (root / "1024x768" / "2000.jpg").unlink()
    dataset = KonIQ10k(root)
    with pytest.warns(MissingImagesWarning, match=r"2 of 6 image files are missing.*1000\.jpg"):
        index = dataset.load()
    assert len(index.records) == 6
    assert sorted(r.image for r in dataset.missing_images(index)) == ["1024x768/1000.jpg", "1024x768/2000.jpg"]


def test_missing_root_and_label_files_name_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="IQABENCH_DATA"):
        KonIQ10k().load()
    with pytest.raises(DatasetNotFoundError) as error:
        KonIQ10k(tmp_path / "nowhere").load()
    message = str(error.value)
    assert "koniq10k_distributions_sets.csv" in message and "database.mmsp-kn.de" in message
    assert "IQABENCH_DATA" in message and "--data-root" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="label file"):
        CSIQ(tmp_path / "empty").load()


def test_data_root_from_environment(tmp_path, monkeypatch):
    make_koniq(tmp_path / "koniq10k")
    monkeypatch.setenv("IQABENCH_DATA", str(tmp_path))
    assert len(load_quietly(KonIQ10k()).records) == 6


def test_spaq_xlsx_and_seeded_split(tmp_path):
    root = make_spaq(tmp_path / "spaq")
    index = load_quietly(SPAQ(root))
    values = [m for _, m in SPAQ_ROWS]
    for name, mos in SPAQ_ROWS:
        record = by_name(index)[name]
        assert record.image == f"TestImage/{name}"
        assert record.mos == pytest.approx(expected_mos(mos, values))
    assert index.provenance.split_source.startswith("random(seed=123")
    assert index.provenance.splits == {"test": math.ceil(0.2 * 5), "train": 4}
    again = load_quietly(SPAQ(root))
    assert [r.split for r in again.records] == [r.split for r in index.records]


def test_livew_drops_its_seven_training_images_by_default(tmp_path):
    root = make_livew(tmp_path / "livew")
    index = load_quietly(LiveWild(root))
    names = [r.image for r in index.records]
    assert names == ["Images/10.JPG", "Images/100.bmp", "Images/1000.JPG"]
    kept = [m for n, m in LIVEW_ROWS[7:]]
    for record, mos in zip(index.records, kept):
        assert record.mos == pytest.approx(expected_mos(mos, kept))
        assert record.std_raw == 10.0 and record.split == "all"
    assert index.provenance.official_count == 1162
    full = load_quietly(LiveWild(root, drop_training_images=False))
    assert len(full.records) == 10 and full.records[0].image == "Images/trainingImages/t1.bmp"
    everything = [m for _, m in LIVEW_ROWS]
    assert full.records[0].mos == pytest.approx(expected_mos(2.0, everything))
    assert LiveWild.default_test_split == "all"


def test_an_explicit_split_source_sets_the_default_test_split(tmp_path):
    # CSIQ is tested whole by default; asked for a seeded split, the default test set must exclude training images.
    csiq = CSIQ(make_csiq(tmp_path / "csiq"), split_source="random")
    index = load_quietly(csiq)
    tested = index.split(csiq.default_test_split)
    assert csiq.default_test_split == "test" and {r.split for r in tested} == {"test"}
    assert len(tested) < len(index.records)
    assert CSIQ(split_source="auto").default_test_split == "all"
    assert KonIQ10k(split_source="all").default_test_split == "all"


def test_kadid_reference_disjoint_split(tmp_path):
    index = load_quietly(KADID10k(make_kadid(tmp_path / "kadid10k"), seed=7, test_fraction=0.3))
    values = [r.mos_raw for r in index.records]
    for record in index.records:
        assert record.mos == pytest.approx(expected_mos(record.mos_raw, values))
        assert record.std_raw == pytest.approx(0.5)  # sqrt(var = 0.25)
    test_refs = {r.reference for r in index.records if r.split == "test"}
    train_refs = {r.reference for r in index.records if r.split == "train"}
    assert len(test_refs) == 3 and len(train_refs) == 7 and not test_refs & train_refs


def test_kadid_in_a_nested_archive_folder(tmp_path):
    make_kadid(tmp_path / "kadid10k" / "kadid10k")
    dataset = KADID10k(tmp_path / "kadid10k")
    assert len(load_quietly(dataset).records) == 20
    assert dataset.root == tmp_path / "kadid10k" / "kadid10k"


def test_csiq_workbook_and_dmos_flip(tmp_path):
    index = load_quietly(CSIQ(make_csiq(tmp_path / "csiq")))
    dmos = [row[4] for row in CSIQ_ROWS]
    records = {r.image: r for r in index.records}
    for image, _kind, _level, std, value, path in CSIQ_ROWS:
        record = records[path]
        assert record.mos_raw == value and record.std_raw == std and record.reference == str(image)
        assert record.mos == pytest.approx(1 + 4 * (max(dmos) - value) / (max(dmos) - min(dmos)))
    assert records["dst_imgs/contrast/aerial_city.contrast.2.png"].mos == pytest.approx(5.0)  # DMOS 0 is best
    assert index.provenance.direction == "lower_better"
    assert index.provenance.splits == {"all": 6}


def test_tid2013_case_insensitive_names_and_std(tmp_path):
    index = load_quietly(TID2013(make_tid2013(tmp_path / "tid2013")))
    values = [m for m, _ in TID_ROWS]
    assert [r.image for r in index.records][-1] == "distorted_images/I25_01_1.bmp"
    for record, (mos, _) in zip(index.records, TID_ROWS):
        assert record.mos == pytest.approx(expected_mos(mos, values))
    assert [r.std_raw for r in index.records] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert [r.reference for r in index.records] == ["I01", "I01", "I02", "I25"]


def test_pipal_per_reference_label_files(tmp_path):
    index = load_quietly(PIPAL(make_pipal(tmp_path / "pipal"), test_fraction=0.34))
    values = [s for rows in PIPAL_ROWS.values() for _, s in rows]
    records = by_name(index)
    for reference, rows in PIPAL_ROWS.items():
        for name, score in rows:
            assert records[name].reference == reference
            assert records[name].image == f"Train_Dist/{name}"
            assert records[name].mos == pytest.approx(expected_mos(score, values))
    # A0002_10_02.bmp: the two numbers of the name, as given
    assert records["A0002_10_02.bmp"].distortion == {"type": "type 10", "level": 2}
    assert records["A0001_00_00.bmp"].distortion == {"type": "type 00", "level": 0}
    test_refs = {r.reference for r in index.records if r.split == "test"}
    assert len(test_refs) == 2 and not test_refs & {r.reference for r in index.records if r.split == "train"}


def test_agiqa_quality_and_alignment(tmp_path):
    root = make_agiqa(tmp_path / "agiqa3k")
    quality = load_quietly(AGIQA3k(root))
    assert [r.image for r in quality.records][0] == "AGIQA-3K/AttnGAN_normal_000.jpg"
    for record, (_, q, s, _) in zip(quality.records, AGIQA_ROWS):
        assert record.mos == pytest.approx(expected_mos(q, [row[1] for row in AGIQA_ROWS])) and record.std_raw == s
    alignment = load_quietly(AGIQA3k(root, label="alignment"))
    assert [r.mos_raw for r in alignment.records] == [row[3] for row in AGIQA_ROWS]


def deqa_koniq_records():
    train = [{"id": f"{n}->{m}", "image": n, "gt_score": m, "gt_score_norm": None, "std": s} for n, m, s,
             _ in KONIQ_ROWS[:3]]
    test = [{"id": f"{n}->{m}", "image": n, "gt_score": m, "std": s} for n, m, s, _ in KONIQ_ROWS[4:]]
    return train, test


def test_deqa_metas_give_the_splits_in_the_data_deqa_score_layout(tmp_path):
    root = tmp_path / "KONIQ"
    train, test = deqa_koniq_records()
    for record in train + test:
        write_image(root / "images" / record["image"])
    write_meta(root / "metas" / "train_koniq_7k.json", train)
    write_meta(root / "metas" / "test_koniq_2k.json", test)
    index = load_quietly(KonIQ10k(root))
    assert index.provenance.split_source == "deqa"
    assert index.provenance.splits == {"train": 3, "test": 2}
    meta_values = [r["gt_score"] for r in train + test]  # no official csv: range over all metas together
    for record in index.records:
        assert record.image.startswith("images/")
        assert record.mos == pytest.approx(expected_mos(record.mos_raw, meta_values))


def test_deqa_metas_with_the_official_release_use_the_whole_dataset_range(tmp_path):
    root = make_koniq(tmp_path / "koniq10k")
    train, test = deqa_koniq_records()
    # the meta omits the image holding the dataset's maximum: the official range must still be used
    test = [r for r in test if r["gt_score"] != 88.39]
    for record in train:
        record["gt_score_norm"] = 1 + 4 * (record["gt_score"] - 3.91) / (88.39 - 3.91)
    write_meta(root / "metas" / "train_koniq_7k.json", train)
    write_meta(root / "metas" / "test_koniq_2k.json", test)
    index = load_quietly(KonIQ10k(root))
    assert sorted(r.image for r in index.records) == ["1024x768/1000.jpg", "1024x768/2000.jpg", "1024x768/5000.jpg",
                                                      "1024x768/826373.jpg"]
    official = [m for _, m, _, _ in KONIQ_ROWS]
    for record in index.records:
        assert record.mos == pytest.approx(expected_mos(record.mos_raw, official))
    notes = " ".join(index.provenance.notes)
    assert "equals the official label (to the meta's printed precision) for 4 of 4" in notes
    assert "agrees with the metas' gt_score_norm on 3" in notes
    official_split = load_quietly(KonIQ10k(root, split_source="official"))
    assert official_split.provenance.splits == {"train": 3, "val": 1, "test": 2}


def test_generic_deqa_meta_source(tmp_path):
    root = tmp_path / "mine"
    records = [{"image": "a/x.png", "gt_score": 0.2, "std": 0.1}, {"image": "a/y.png", "gt_score": 0.8}]
    for record in records:
        write_image(root / record["image"])
    write_meta(root / "scores.json", records)
    index = load_quietly(DeqaMetaDataset(root, meta="scores.json", direction="lower_better"))
    assert [r.split for r in index.records] == ["test", "test"]
    assert [r.mos for r in index.records] == pytest.approx([5.0, 1.0])
    assert index.records[0].std_raw == 0.1
    with pytest.raises(IQABenchError, match="gt_score"):
        write_meta(root / "bad.json", [{"image": "a/x.png"}])
        DeqaMetaDataset(root, meta="bad.json").load()


def test_options_are_checked_against_the_signature():
    check_options(LiveWild, {"drop_training_images": False, "split_source": "deqa"}, "livew")
    with pytest.raises(IQABenchError, match="drop_training_images"):
        check_options(LiveWild, {"drop_training_image": False}, "livew")
    with pytest.raises(IQABenchError, match="no official"):
        SPAQ(split_source="official")


# ---------------------------------------------------------------------------------------------------------------------
# layouts real users have (issue 11), option parsing, and the direction of DeQA metas

from iqabench.contracts.dataset import DatasetWarning  # noqa: E402


def test_csiq_label_txt_with_the_flat_dst_imgs_all_folder(tmp_path):
    root = tmp_path / "csiq"
    names = [path.rpartition("/")[2].replace(".jpeg.", ".JPEG.") for *_, path in CSIQ_ROWS]
    root.mkdir()
    (root / "csiq_label.txt").write_text("".join(f"{n} {row[4]}\n" for n, row in zip(names, CSIQ_ROWS)))
    for name in names:
        write_image(root / "dst_imgs_all" / name)
    index = load_quietly(CSIQ(root))
    assert [r.image for r in index.records] == [f"dst_imgs_all/{n}" for n in names]
    dmos = [row[4] for row in CSIQ_ROWS]
    assert [r.mos for r in index.records] == pytest.approx([expected_mos(d, dmos, lower_better=True) for d in dmos])


def test_koniq_with_only_512x384_is_read_with_a_warning(tmp_path):
    root = make_koniq(tmp_path / "koniq10k", images=False)
    for name, *_ in KONIQ_ROWS:
        write_image(root / "512x384" / name)
    with pytest.warns(DatasetWarning, match=r"1024x768/ not found, images read from 512x384/.*resolution=512x384"):
        index = KonIQ10k(root).load()
    assert [r.image for r in index.records] == [f"512x384/{n}" for n, *_ in KONIQ_ROWS]
    assert index.provenance.warnings and "512x384" in index.provenance.warnings[0]
    asked = KonIQ10k(root, resolution="1024x768")  # asked for explicitly: not substituted
    with pytest.warns(MissingImagesWarning, match="6 of 6"):
        asked.load()
    with pytest.raises(IQABenchError, match="resolution must be one of auto, 1024x768, 512x384"):
        KonIQ10k(root, resolution="800x600")


def test_deqa_meta_paths_relative_to_a_parent_folder_are_found_by_name(tmp_path):
    # Q-Align's lists name koniq/x.jpg (relative to the folder above the dataset); the images are in 1024x768/
    root = make_koniq(tmp_path / "koniq10k")
    write_image(root / "512x384" / "1000.jpg")  # the same name twice under the root: sorted folder order wins
    records = [{"image": f"koniq/{n}", "gt_score": m} for n, m, _, _ in KONIQ_ROWS]
    write_meta(tmp_path / "test_koniq.json", records)
    index = load_quietly(DeqaMetaDataset(root, meta=str(tmp_path / "test_koniq.json")))
    assert [r.image for r in index.records] == [f"1024x768/{n}" for n, *_ in KONIQ_ROWS]
    assert any("1 image names occur in more than one folder" in n and "512x384/1000.jpg" in n
               for n in index.provenance.notes)


def test_qalign_record_variants_img_path_string_scores_and_id_scores(tmp_path):
    root = tmp_path / "mixed"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(root / "imgs" / name)
    write_meta(root / "agi.json", [{"img_path": "agi-cgi/a.jpg", "gt_score": "0.965602553"},
                                   {"img_path": "agi-cgi/b.jpg", "gt_score": "4.1"}])
    write_meta(root / "test_kadid.json", [{"id": "c.jpg->4.63", "image": "kadid10k/c.jpg"},
                                          {"id": "a.jpg->1.5", "image": "kadid10k/a.jpg"}])
    agi = load_quietly(DeqaMetaDataset(root, meta="agi.json"))
    assert [(r.image, r.mos_raw) for r in agi.records] == [("imgs/a.jpg", 0.965602553), ("imgs/b.jpg", 4.1)]
    kadid = load_quietly(DeqaMetaDataset(root, meta="test_kadid.json"))
    assert [r.mos_raw for r in kadid.records] == [4.63, 1.5]
    assert any("read from their id" in n for n in kadid.provenance.notes)


@pytest.mark.parametrize("value", ["3.91,88.39", "3.91, 88.39", [3.91, 88.39], ("3.91", "88.39")])
def test_rescale_range_accepts_the_list_forms(tmp_path, value):
    root = tmp_path / "m"
    write_image(root / "x.png")
    write_image(root / "y.png")
    write_meta(root / "m.json", [{"image": "x.png", "gt_score": 40.0}, {"image": "y.png", "gt_score": 70.0}])
    index = load_quietly(create_dataset("deqa-meta", root=root, meta="m.json", rescale_range=value))
    assert (index.provenance.rescale_min, index.provenance.rescale_max) == (3.91, 88.39)
    assert [r.mos for r in index.records] == pytest.approx([expected_mos(v, [3.91, 88.39]) for v in (40.0, 70.0)])


@pytest.mark.parametrize("value, message", [("abc", "must be tuple"), ("1,2,3", "must be tuple"),
                                            ([5, 1], "below the maximum"), (7, "must be tuple")])
def test_rescale_range_rejects_bad_values_clearly(value, message):
    with pytest.raises(IQABenchError, match=message):
        create_dataset("deqa-meta", root="/nowhere", rescale_range=value)


def csiq_meta_records(flip: bool) -> list[dict]:
    return [{"image": f"images/{path.rpartition('/')[2]}", "gt_score": (1 - row[4]) if flip else row[4]}
            for row, path in ((row, row[5]) for row in CSIQ_ROWS)]


def test_csiq_meta_direction_is_checked_against_the_official_labels(tmp_path):
    root = make_csiq(tmp_path / "csiq")
    write_meta(root / "metas" / "test_csiq_866.json", csiq_meta_records(flip=False))
    index = load_quietly(CSIQ(root))
    assert index.provenance.split_source == "deqa"
    notes = index.provenance.notes
    assert any(n.startswith("direction of the metas checked: Spearman correlation +1.000") for n in notes)
    write_meta(root / "metas" / "test_csiq_866.json", csiq_meta_records(flip=True))
    with pytest.raises(IQABenchError, match=r"Spearman correlation -1\.000 over the 6 images.*higher is better"):
        CSIQ(root).load()


def test_csiq_meta_without_official_labels_says_which_direction_it_assumed(tmp_path):
    root = tmp_path / "CSIQ"
    for *_, path in CSIQ_ROWS:
        write_image(root / "images" / path.rpartition("/")[2])
    write_meta(root / "metas" / "test_csiq_866.json", csiq_meta_records(flip=False))
    index = load_quietly(CSIQ(root))
    assert index.provenance.direction == "lower_better"
    assert any("assumed lower_better like the official labels (not checked without them)" in n
               for n in index.provenance.notes)
    best = min(CSIQ_ROWS, key=lambda row: row[4])[5].rpartition("/")[2]
    assert next(r for r in index.records if r.image.endswith(best)).mos == pytest.approx(5.0)


def test_meta_values_that_differ_from_the_official_labels_are_a_warning(tmp_path):
    root = make_koniq(tmp_path / "koniq10k")
    records = [{"image": n, "gt_score": m + (5.0 if n == "5000.jpg" else 0.0)} for n, m, _, split in KONIQ_ROWS
               if split == "test"] + [{"image": "99.jpg", "gt_score": 50.0}]
    write_meta(root / "metas" / "test_koniq_2k.json", records)
    with pytest.warns(DatasetWarning) as caught:
        index = KonIQ10k(root).load()
    warned = [str(w.message) for w in caught if w.category is DatasetWarning]
    assert any("differs from the official label for 1 of 2" in m and "5000.jpg: meta 75, official 70" in m
               for m in warned)
    assert any("1 of 3 meta records name images that are not in the official labels of KonIQ (99.jpg)" in m
               for m in warned)
    assert index.provenance.warnings == warned


def test_dataset_options_are_stored_unchanged():
    dataset = DeqaMetaDataset("/x", meta="a.json,b.json", direction="lower_better", rescale_range=(1, 5))
    assert (dataset.meta, dataset.direction, dataset.rescale_range, dataset.allow_outside_root) == (
        "a.json,b.json", "lower_better", (1, 5), False)
    koniq = KonIQ10k("/x", seed=5, test_fraction=0.25, split_source="random")
    assert (koniq.resolution, koniq.seed, koniq.test_fraction, koniq.split_source) == ("auto", 5, 0.25, "random")
    with pytest.raises(IQABenchError, match="seed must be an integer"):
        KonIQ10k("/x", seed="five")
