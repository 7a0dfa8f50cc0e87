"""The built-in ``folder`` dataset (issue 25): a folder of images and a CSV or JSON of their scores, no plugin.

Expected MOS values are the min-max rescale to [1, 5] worked by hand from the scores written here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFilter

from iqabench import create_dataset
from iqabench.errors import DatasetNotFoundError, IQABenchError
from tests.differentiable import photo


def write_photos(folder: Path, count: int = 6, size: int = 32) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f"photo_{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name, quality=90)
        names.append(name)
    return names


def load(root: Path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_dataset("folder", root=root, **options).load()


def test_a_csv_with_the_usual_column_names_needs_no_option(tmp_path):
    names = write_photos(tmp_path)
    scores = [10.0, 30.0, 50.0, 70.0, 90.0, 20.0]
    (tmp_path / "ratings.csv").write_text("Filename,MOS,comment\n" + "".join(
        f"{n},{s},ok\n" for n, s in zip(names, scores)))
    index = load(tmp_path)
    assert [r.image for r in index.records] == names
    # min 10 -> 1, max 90 -> 5: 1 + 4 * (s - 10) / 80
    assert [r.mos for r in index.records] == pytest.approx([1 + 4 * (s - 10) / 80 for s in scores])
    assert {r.split for r in index.records} == {"all"}
    provenance = index.provenance
    assert provenance.direction == "higher_better" and provenance.label_files == ["ratings.csv"]
    assert "none: every record is in split 'all'" in provenance.split_source
    assert create_dataset("folder", root=tmp_path).test_split() == "all"  # no split: every image is tested


def test_a_dmos_column_is_lower_better_and_a_split_column_is_used(tmp_path):
    names = write_photos(tmp_path, count=4)
    (tmp_path / "labels.csv").write_text("image;dmos;split\n" + "".join(
        f"{n};{d};{s}\n" for n, d, s in zip(names, [0, 20, 40, 80], ["train", "train", "test", "test"])))
    index = load(tmp_path)
    assert index.provenance.direction == "lower_better"
    assert [r.mos for r in index.records] == pytest.approx([5.0, 4.0, 3.0, 1.0])  # 5 - 4 * d / 80
    assert [r.split for r in index.records] == ["train", "train", "test", "test"]
    assert create_dataset("folder", root=tmp_path).test_split() == "test"
    assert load(tmp_path, direction="higher_better").records[0].mos == pytest.approx(1.0)


def test_options_name_other_columns_and_the_documented_scale(tmp_path):
    names = write_photos(tmp_path, count=3)
    (tmp_path / "scores.csv").write_text("pic\tvalue\tfold\n" + "".join(
        f"{n}\t{v}\t{f}\n" for n, v, f in zip(names, [25, 50, 75], ["a", "b", "b"])))
    index = load(tmp_path, image_column="pic", score_column="VALUE", split_column="fold", score_range=(0, 100))
    assert [r.mos for r in index.records] == pytest.approx([2.0, 3.0, 4.0])  # 1 + 4 * v / 100
    assert [r.split for r in index.records] == ["a", "b", "b"]
    assert index.provenance.nominal_range == (0, 100)
    with pytest.raises(IQABenchError,
                       match=r"no column 'fold2' \(option split_column\); its columns: fold, pic, value"):
        load(tmp_path, image_column="pic", score_column="value", split_column="fold2")


@pytest.mark.parametrize("form", ["list", "mapping", "lines"])
def test_json_lists_mappings_and_lines(tmp_path, form):
    names = write_photos(tmp_path, count=3)
    scores = [1.0, 2.0, 3.0]
    if form == "list":
        (tmp_path / "s.json").write_text(json.dumps([{"file": n, "score": s} for n, s in zip(names, scores)]))
    elif form == "mapping":
        (tmp_path / "s.json").write_text(json.dumps(dict(zip(names, scores))))
    else:
        (tmp_path / "s.jsonl").write_text("".join(json.dumps({"image": n, "mos": s}) + "\n"
                                                  for n, s in zip(names, scores)))
    assert [r.mos for r in load(tmp_path).records] == pytest.approx([1.0, 3.0, 5.0])


@pytest.mark.parametrize(("content", "expected"), [
    ("image,mos\nphoto_0.jpg,3\nphoto_0.jpg,4\n", r"s.csv, line 3 lists 'photo_0.jpg' again \(first at line 2\)"),
    ("image,mos\nphoto_0.jpg,\n", r"s.csv, line 2: the 'mos' cell is empty"),
    ("image,mos\nphoto_0.jpg,good\n", r"s.csv, line 2: the score 'good' of 'photo_0.jpg' is not a number"),
    ("image,mos\nphoto_0.jpg,nan\n", r"s.csv, line 2 has the score nan for 'photo_0.jpg', not a finite number"),
    ("name,rating\nphoto_0.jpg,3\n", r"no image column found \(looked for image, file, filename, image_name, "
                                     r"path\); its columns: name, rating. Name it with the option image_column"),
])
def test_bad_rows_are_errors_naming_the_file_and_line(tmp_path, content, expected):
    write_photos(tmp_path, count=1)
    (tmp_path / "s.csv").write_text(content)
    with pytest.raises(IQABenchError, match=expected):
        load(tmp_path)


def test_the_labels_file_is_found_or_named(tmp_path):
    write_photos(tmp_path, count=2)
    with pytest.raises(DatasetNotFoundError, match="no .csv, .json or .jsonl file of scores"):
        load(tmp_path)
    (tmp_path / "a.csv").write_text("image,mos\nphoto_0.jpg,1\nphoto_1.jpg,2\n")
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(IQABenchError, match=r"several files could hold the scores \(a.csv, b.json\).*labels"):
        load(tmp_path)
    assert len(load(tmp_path, labels="a.csv").records) == 2
    with pytest.raises(DatasetNotFoundError, match="the labels file .*c.csv does not exist"):
        load(tmp_path, labels="c.csv")
    with pytest.raises(DatasetNotFoundError, match="no dataset folder given.*--root DIR"):
        create_dataset("folder").root  # noqa: B018


def test_images_outside_the_folder_are_refused_as_for_every_dataset(tmp_path):
    write_photos(tmp_path / "photos", count=1)
    (tmp_path / "photos" / "s.csv").write_text("image,mos\n../elsewhere.jpg,1\nphoto_0.jpg,2\n")
    with pytest.raises(IQABenchError, match="outside the dataset root"):
        load(tmp_path / "photos")


@pytest.mark.slow
def test_iqabench_run_scores_a_folder_of_jpegs_and_a_csv(tmp_path, capsys):
    """The whole command on a folder of JPEGs of one photograph blurred more and more, rated lower and lower:
    NIQE (lower is better, so its correlations are sign-flipped) follows the ratings."""
    from iqabench.cli import main

    photos = tmp_path / "my photos"
    photos.mkdir()
    base = photo(256, 192)
    rows = []
    for level in range(6):
        name = f"blur_{level}.jpg"
        base.filter(ImageFilter.GaussianBlur(radius=level * 1.5)).save(photos / name, quality=95)
        rows.append(f"{name},{5 - 0.7 * level:.1f}")
    (photos / "ratings.csv").write_text("filename,mos\n" + "\n".join(rows) + "\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "my-photos", "protocol": "single_domain", "bootstrap": 0, "num_workers": 0,
        "efficiency": {"enabled": False},
        "test": [{"dataset": "folder", "root": "my photos", "label": "My photos"}],
        "models": [{"name": "niqe"}],
    }))
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    test_set = results["test_sets"][0]
    assert (test_set["label"], test_set["split"], test_set["count"]) == ("My photos", "all", 6)
    pair = results["results"][0]
    assert pair["status"] == "ok" and pair["scored"] == 6
    assert pair["metrics"]["srcc"]["value"] > 0.8  # NIQE is lower-better: its sign is flipped for SRCC
    assert "My photos" in (tmp_path / "out" / "leaderboard.md").read_text()
