"""Label and meta files cannot make iqabench read images outside the dataset root (issue 13), unless the user allows it.

The check sits in :func:`iqabench.contracts.dataset.build_index`, so it covers the
built-in plugins and a third-party plugin alike; these tests go through
both, and through the command line for the "one clean error line" promise.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest
from test_datasets import write_image

from iqabench import Dataset, hookimpl
from iqabench.cli import main
from iqabench.contracts.dataset import DatasetIndex, ImageOutsideRootError, MissingImagesWarning, build_index
from iqabench.data.check import check_datasets
from iqabench.errors import IQABenchError
from iqabench.registry.discovery import PluginRegistry
from iqabench_plugins.datasets import TID2013, DeqaMetaDataset


def dataset_with_meta(tmp_path: Path, images: list[str]) -> tuple[Path, Path]:
    """A dataset folder ``root`` with ``inside.png`` and ``images/x.png``, a file ``outside.png`` next to it, a meta."""
    root = tmp_path / "root"
    write_image(root / "inside.png")
    write_image(root / "images" / "x.png")
    write_image(tmp_path / "outside.png")
    meta = root / "meta.json"
    meta.write_text(json.dumps([{"image": image, "gt_score": 1.0 + i} for i, image in enumerate(images)]))
    return root, meta


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_a_meta_naming_a_file_outside_the_root_is_refused_with_the_record(tmp_path, kind):
    outside = "../outside.png" if kind == "dotdot" else str(tmp_path / "outside.png")
    root, meta = dataset_with_meta(tmp_path, ["inside.png", outside])
    with pytest.raises(ImageOutsideRootError) as error:
        DeqaMetaDataset(root, meta="meta.json").load()
    message = str(error.value)
    assert f"{meta}, record 1" in message and repr(outside) in message
    assert str((tmp_path / "outside.png").resolve()) in message and "allow_outside_root" in message


def test_an_escaping_path_is_not_rescued_by_a_same_named_file_inside(tmp_path):
    # images/x.png exists under the root; the meta's ../images/x.png names a file outside: refused, not substituted
    root, _ = dataset_with_meta(tmp_path, ["../images/x.png"])
    with pytest.raises(ImageOutsideRootError, match=r"'\.\./images/x\.png'"):
        DeqaMetaDataset(root, meta="meta.json").load()


def test_an_absolute_path_inside_the_root_is_accepted_and_made_relative(tmp_path):
    root, _ = dataset_with_meta(tmp_path, [str(tmp_path / "root" / "images" / "x.png"), "inside.png"])
    index = DeqaMetaDataset(root, meta="meta.json").load()
    assert [r.image for r in index.records] == ["images/x.png", "inside.png"]


def test_symbolic_links_are_followed(tmp_path):
    root, _ = dataset_with_meta(tmp_path, ["link.png"])
    os.symlink(tmp_path / "outside.png", root / "link.png")
    with pytest.raises(ImageOutsideRootError, match=r"record 0 names the image 'link\.png'"):
        DeqaMetaDataset(root, meta="meta.json").load()
    # a linked folder that leads outside
    (tmp_path / "elsewhere").mkdir()
    write_image(tmp_path / "elsewhere" / "y.png")
    os.symlink(tmp_path / "elsewhere", root / "linked")
    (root / "meta.json").write_text(json.dumps([{"image": "linked/y.png", "gt_score": 1.0},
                                                {"image": "inside.png", "gt_score": 2.0}]))
    with pytest.raises(ImageOutsideRootError, match="linked/y.png"):
        DeqaMetaDataset(root, meta="meta.json").load()
    # links that stay inside the root are fine
    os.symlink(root / "images" / "x.png", root / "alias.png")
    (root / "meta.json").write_text(json.dumps([{"image": "alias.png", "gt_score": 1.0},
                                                {"image": "inside.png", "gt_score": 2.0}]))
    assert [r.image for r in DeqaMetaDataset(root, meta="meta.json").load().records] == ["alias.png", "inside.png"]


def test_the_root_itself_may_be_a_link(tmp_path):
    root, _ = dataset_with_meta(tmp_path, ["inside.png", "images/x.png"])
    os.symlink(root, tmp_path / "root-link")
    assert len(DeqaMetaDataset(tmp_path / "root-link", meta="meta.json").load().records) == 2


def test_allow_outside_root_opts_in(tmp_path):
    root, _ = dataset_with_meta(tmp_path, ["inside.png", "../outside.png", str(tmp_path / "outside.png")])
    dataset = DeqaMetaDataset(root, meta="meta.json", allow_outside_root=True)
    index = dataset.load()
    assert [r.image for r in index.records] == ["inside.png", "../outside.png", str(tmp_path / "outside.png")]
    assert "2 image paths resolve outside the dataset root (allowed by allow_outside_root)" in index.provenance.notes
    assert dataset.missing_images(index) == []  # the runner opens root / image: both outside files are there
    with pytest.raises(IQABenchError, match="allow_outside_root must be true or false"):
        DeqaMetaDataset(root, meta="meta.json", allow_outside_root="yes please")


def test_official_label_files_are_confined_too(tmp_path):
    root = tmp_path / "tid2013"
    root.mkdir()
    (root / "mos_with_names.txt").write_text("5.1 i01_01_1.bmp\n4.2 ../../secret.bmp\n")
    write_image(root / "distorted_images" / "i01_01_1.bmp")
    with pytest.raises(ImageOutsideRootError, match=r"mos_with_names\.txt, line 2 names the image"):
        TID2013(root).load()
    with pytest.warns(MissingImagesWarning, match="secret.bmp"):
        index = TID2013(root, allow_outside_root=True).load()
    assert index.records[1].image == "distorted_images/../../secret.bmp"


class ThirdParty(Dataset):
    """A plugin written elsewhere: it calls build_index and knows nothing of confinement."""

    name = "third-party"
    title = "Third party"
    default_dir = "third"

    def load(self) -> DatasetIndex:
        assert self.root is not None
        lines = (self.root / "labels.txt").read_text().split()
        rows = [{"image": name, "mos_raw": float(i)} for i, name in enumerate(lines)]
        return build_index(self.name, self.root, rows, label_files=["labels.txt"], nominal_range=None,
                           direction="higher_better", split_source="all", official_count=None)


def test_a_third_party_plugin_is_confined_without_doing_anything(tmp_path):
    root = tmp_path / "third"
    write_image(root / "a.png")
    (root / "labels.txt").write_text("a.png ../../etc/hostname")
    with pytest.raises(ImageOutsideRootError,
                       match=r"record 1 of labels\.txt names the image '\.\./\.\./etc/hostname'"):
        ThirdParty(root).load()
    # the base class answers data check's questions for it
    (root / "labels.txt").write_text("a.png b.png")
    dataset = ThirdParty(root)
    index = dataset.load()
    assert dataset.is_generated() and [r.image for r in dataset.missing_images(index)] == ["b.png"]
    registry = PluginRegistry(load_entry_points=False)
    registry.register(types.SimpleNamespace(iqabench_datasets=hookimpl(lambda: [ThirdParty])), name="third")
    (row,) = check_datasets(tmp_path, registry=registry)
    assert (row["found"], row["images"], row["records"], row["problem"]) == (True, 1, 2, "1 image files missing")


def test_the_command_line_ends_in_one_error_line(tmp_path, capsys):
    root, meta = dataset_with_meta(tmp_path, [str(tmp_path / "outside.png"), "inside.png"])
    assert main(["data", "show", "deqa-meta", "--root", str(root), "-o", "meta=meta.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iqabench: error: deqa-meta: ") and err.count("\n") == 1 and "record 0" in err
    assert main(["data", "show", "deqa-meta", "--root", str(root), "-o", "meta=meta.json",
                 "-o", "allow_outside_root=true", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[1])["image"] == str(tmp_path / "outside.png")
