"""The synthetic dataset (designed distortions of scikit-image photos) and its describer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqabench.errors import IQABenchError
from iqabench.reasoning.describe import ImageToDescribe, describe
from iqabench.reasoning.texts import read_texts
from iqabench.registry.discovery import default_registry
from iqabench.scoring.images import load_image
from iqabench_plugins.synthetic import Describer, Synthetic
from iqabench_plugins.synthetic import generate as generator
from iqabench_plugins.synthetic.dataset import reference_split
from iqabench_plugins.synthetic.distortions import DISTORTIONS

REFERENCES = ["astronaut", "camera"]  # one colour, one grey photograph
TYPES = ["gaussian_blur", "gaussian_noise", "jpeg", "saturation"]
#: the documented mapping, written out by hand: level 0 (pristine) = 5 ... level 5 = 1
LABEL_OF_LEVEL = {0: 5.0, 1: 4.2, 2: 3.4, 3: 2.6, 4: 1.8, 5: 1.0}


def small(root: Path, **options) -> Synthetic:
    return Synthetic(root=root, references=REFERENCES, distortions=TYPES, **options)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """(generation folder, index, manifest) of the small subset at the default size."""
    root = tmp_path_factory.mktemp("synthetic") / "synthetic"
    index = small(root).load()
    folder = root / "384x256"
    manifest = json.loads((folder / "manifest.json").read_text())
    return folder, index, manifest


def entries_of(manifest, reference, distortion):
    """The pristine image then levels 1..5 of one (reference, distortion)."""
    chain = [e for e in manifest["images"] if e["reference"] == reference and e["distortion"] == distortion]
    by_level = {e["level"]: e for e in chain}
    pristine = next(e for e in manifest["images"] if e["reference"] == reference and e["level"] == 0)
    return [pristine] + [by_level[level] for level in range(1, 6)]


def grey(root: Path, entry) -> np.ndarray:
    return np.asarray(Image.open(root / entry["image"]).convert("L"), dtype=np.float64)


def test_registered():
    registry = default_registry()
    assert registry.dataset("synthetic") is Synthetic
    assert registry.model("describer") is Describer
    assert Describer.traits.generative and Describer.score_range == (1.0, 5.0)


def test_count_pristine_plus_five_levels_and_grey_skips_saturation(generated):
    root, index, _ = generated
    assert {r.image.split("/")[0] for r in index.records} == {"384x256"}
    # astronaut: 1 + 4 types x 5; camera (grey): 1 + 3 types x 5 (desaturating grey changes nothing)
    assert len(index.records) == 21 + 16
    assert not (root / "images/camera/saturation_1.png").exists()
    for path in (root / "images").rglob("*.png"):
        with Image.open(path) as image:
            assert image.size == (384, 256) and image.mode == "RGB"


def test_labels_are_the_designed_severities(generated):
    _, index, manifest = generated
    level_of = {f"384x256/{e['image']}": e["level"] for e in manifest["images"]}
    for record in index.records:
        assert record.mos_raw == LABEL_OF_LEVEL[level_of[record.image]]
        assert record.mos == pytest.approx(record.mos_raw, abs=1e-12)
    assert index.provenance.rescale_min == 1.0 and index.provenance.rescale_max == 5.0
    assert any("not human opinions" in note for note in index.provenance.notes)
    assert generator.severity_label(4) == 1.8


def test_split_is_reference_disjoint(generated):
    _, index, _ = generated
    splits_of = {}
    for record in index.records:
        splits_of.setdefault(record.reference, set()).add(record.split)
    assert all(len(s) == 1 for s in splits_of.values())
    assert {next(iter(s)) for s in splits_of.values()} == {"train", "test"}


def test_split_fraction_and_seed():
    names = [f"ref{i}" for i in range(9)]
    split = reference_split(names, test_fraction=1 / 3, seed=0)
    assert sorted(split.values()).count("test") == 3
    assert split == reference_split(list(reversed(names)), test_fraction=1 / 3, seed=0)
    assert any(reference_split(names, 1 / 3, seed) != split for seed in range(1, 5))
    with pytest.raises(IQABenchError, match="at least 2 references"):
        reference_split(["astronaut"], 0.5, 0)


def test_grey_reference_is_grey_rgb(generated):
    root, _, _ = generated
    pixels = np.asarray(Image.open(root / "images/camera/pristine.png"))
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def laplacian_variance(image: np.ndarray) -> float:
    lap = image[1:-1, :-2] + image[1:-1, 2:] + image[:-2, 1:-1] + image[2:, 1:-1] - 4 * image[1:-1, 1:-1]
    return float(lap.var())


@pytest.mark.parametrize("reference", REFERENCES)
def test_blur_sharpness_falls_with_level(generated, reference):
    root, _, manifest = generated
    sharpness = [laplacian_variance(grey(root, e)) for e in entries_of(manifest, reference, "gaussian_blur")]
    assert all(a > b for a, b in zip(sharpness, sharpness[1:])), sharpness


@pytest.mark.parametrize("reference", REFERENCES)
def test_noise_high_frequency_energy_rises_with_level(generated, reference):
    root, _, manifest = generated
    energy = [laplacian_variance(grey(root, e)) for e in entries_of(manifest, reference, "gaussian_noise")]
    assert all(a < b for a, b in zip(energy, energy[1:])), energy


@pytest.mark.parametrize("distortion", TYPES)
def test_error_to_reference_rises_with_level(generated, distortion):
    root, _, manifest = generated
    reference = "astronaut"
    chain = entries_of(manifest, reference, distortion)
    pristine = np.asarray(Image.open(root / chain[0]["image"]), dtype=np.float64)
    mse = [float(((np.asarray(Image.open(root / e["image"]), dtype=np.float64) - pristine) ** 2).mean()) for e in chain]
    assert mse[0] == 0.0 and all(a < b for a, b in zip(mse, mse[1:])), mse


def test_saturation_top_level_is_colourless(generated):
    root, _, _ = generated
    pixels = np.asarray(Image.open(root / "images/astronaut/saturation_5.png"), dtype=int)
    assert np.abs(pixels - pixels.mean(axis=-1, keepdims=True)).max() <= 1  # chroma 0, up to rounding


def test_regeneration_is_byte_identical(generated, tmp_path):
    root, _, manifest = generated
    small(tmp_path).load()
    again = tmp_path / "384x256"
    files = sorted(p.relative_to(root) for p in (root / "images").rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in (again / "images").rglob("*.png"))
    for relative in files:
        assert (root / relative).read_bytes() == (again / relative).read_bytes(), relative
    assert json.loads((again / "manifest.json").read_text())["images"] == manifest["images"]


def test_manifest_hashes_are_the_decoded_pixels(generated):
    root, _, manifest = generated
    for entry in manifest["images"][:5]:
        pixels = np.asarray(load_image(root / entry["image"]))
        digest = hashlib.sha256(b"256x384x3:" + pixels.tobytes()).hexdigest()
        assert entry["sha256"] == digest
    assert len({e["sha256"] for e in manifest["images"]}) == len(manifest["images"])


def test_subset_of_a_generation_is_reused(generated):
    folder, _, _ = generated
    manifest_bytes = (folder / "manifest.json").read_bytes()
    index = Synthetic(root=folder.parent, references=REFERENCES, distortions="jpeg").load()
    assert len(index.records) == 2 * (1 + 5)
    assert (folder / "manifest.json").read_bytes() == manifest_bytes


def test_missing_images_are_added_to_a_generation_not_swapped_for_them(tmp_path):
    jpeg = Synthetic(root=tmp_path, references=REFERENCES, distortions=["jpeg"])
    contrast = Synthetic(root=tmp_path, references=REFERENCES, distortions=["contrast"])
    assert not jpeg.is_generated() and not (tmp_path / "384x256").exists()  # asking generates nothing
    jpeg.load()
    assert jpeg.is_generated() and not contrast.is_generated()
    contrast.load()
    assert jpeg.is_generated() and contrast.is_generated()
    manifest = generator.read_manifest(tmp_path / "384x256")
    assert set(manifest["distortions"]) == {"jpeg", "contrast"}
    assert len(manifest["images"]) == 2 * (1 + 2 * 5)


def test_sizes_live_side_by_side(tmp_path):
    small_index = Synthetic(root=tmp_path, references=REFERENCES, distortions=["jpeg"], size=(192, 192)).load()
    Synthetic(root=tmp_path, references=REFERENCES, distortions=["jpeg"]).load()
    assert [folder.name for folder, _ in generator.generations(tmp_path)] == ["192x192", "384x256"]
    with Image.open(tmp_path / small_index.records[0].image) as image:
        assert image.size == (192, 192)
    describer = Describer(root=tmp_path)
    images = [load_image(tmp_path / f"{size}/images/camera/jpeg_2.png") for size in ("192x192", "384x256")]
    assert [s.value for s in describer.score(images)] == [3.4, 3.4]


def failing_jpeg(monkeypatch):
    def boom(image, parameter, rng):
        raise RuntimeError("simulated crash during generation")

    monkeypatch.setitem(DISTORTIONS, "jpeg", dataclasses.replace(DISTORTIONS["jpeg"], apply=boom))


def test_interrupted_generation_leaves_nothing_trusted(tmp_path, monkeypatch):
    failing_jpeg(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        small(tmp_path).load()
    assert list(tmp_path.iterdir()) == []  # neither a generation nor its partial folder
    assert generator.generations(tmp_path) == []
    monkeypatch.undo()
    assert len(small(tmp_path).load().records) == 37


def test_interrupted_regeneration_keeps_the_previous_generation(tmp_path, monkeypatch):
    Synthetic(root=tmp_path, references=REFERENCES, distortions=["gaussian_blur"]).load()
    failing_jpeg(monkeypatch)
    with pytest.raises(RuntimeError):
        small(tmp_path).load()  # needs jpeg, which the old generation lacks
    manifest = generator.read_manifest(tmp_path / "384x256")
    assert manifest is not None and set(manifest["distortions"]) == {"gaussian_blur"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["384x256"]


def test_folder_left_by_a_killed_generation_is_ignored_and_removed(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    partial = tmp_path / f".384x256.partial-{dead_pid}-deadbeef"
    (partial / "images").mkdir(parents=True)
    (partial / "manifest.json").write_text(json.dumps({"version": generator.GENERATOR_VERSION, "images": []}))
    assert len(Synthetic(root=tmp_path, references=REFERENCES, distortions=["jpeg"]).load().records) == 12
    assert not partial.exists()


def test_other_generator_version_is_regenerated(tmp_path):
    Synthetic(root=tmp_path, references=REFERENCES, distortions=["jpeg"]).load()
    folder = tmp_path / "384x256"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = generator.GENERATOR_VERSION - 1
    manifest["images"] = manifest["images"][:1]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert len(Synthetic(root=tmp_path, references=REFERENCES, distortions=["jpeg"]).load().records) == 12
    assert generator.read_manifest(folder)["version"] == generator.GENERATOR_VERSION


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    mine = tmp_path / "384x256"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(IQABenchError, match="not a synthetic-dataset cache"):
        small(tmp_path).load()
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"] and (mine / "thesis.tex").read_text() == "precious"


def test_bad_options_say_what_to_do(tmp_path):
    with pytest.raises(IQABenchError, match="choose from .*gaussian_blur"):
        Synthetic(root=tmp_path, distortions=["gaussian_blurr"])
    with pytest.raises(IQABenchError, match="at least 192 px"):
        Synthetic(root=tmp_path, size=(384, 128))
    with pytest.raises(IQABenchError, match="between 0 and 1"):
        Synthetic(root=tmp_path, test_fraction=1.0)
    assert Synthetic(root=tmp_path, size="320x240").size == (320, 240)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.delenv("IQABENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Synthetic().root == tmp_path / "xdg" / "iqabench" / "synthetic"
    monkeypatch.setenv("IQABENCH_DATA", str(tmp_path / "data"))
    assert Synthetic().root == tmp_path / "data" / "synthetic"


# --- describer -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def describer(generated):
    return Describer(root=generated[0].parent)


def texts_with_seed(describer, images, seed):
    torch.manual_seed(seed)
    return describer.score(images)


def test_describer_scores_the_designed_label(generated, describer):
    folder, index, _ = generated
    records = index.records[:8]
    scores = describer.score([load_image(folder.parent / r.image) for r in records])
    assert [s.value for s in scores] == [r.mos for r in records]
    assert all(s.text for s in scores)


def test_describer_text_names_type_and_severity(generated, describer):
    root, _, _ = generated
    (score,) = texts_with_seed(describer, [load_image(root / "images/astronaut/gaussian_blur_5.png")], 0)
    text = score.text.lower()
    assert "blur" in text or "defocus" in text
    assert any(word in text for word in ("severe", "extreme", "overwhelming"))


def test_describer_same_seed_same_text_other_seeds_vary(generated, describer):
    root, _, _ = generated
    images = [load_image(root / "images/astronaut/jpeg_3.png"), load_image(root / "images/camera/pristine.png")]
    first = [s.text for s in texts_with_seed(describer, images, 7)]
    assert first == [s.text for s in texts_with_seed(describer, images, 7)]
    across_seeds = {s.text for seed in range(6) for s in texts_with_seed(describer, images[:1], seed)}
    assert len(across_seeds) >= 2


def test_describer_refuses_unknown_images(generated, describer):
    root, _, _ = generated
    known = load_image(root / "images/astronaut/pristine.png")
    (resized, blank) = describer.score([known.resize((383, 256)), Image.new("RGB", (384, 256), "grey")])
    assert resized.failed and blank.failed
    assert "not an image of the synthetic dataset" in resized.error


def test_describe_writes_one_text_per_image_and_seed_and_resumes(generated, describer, tmp_path):
    folder, index, _ = generated
    images = [ImageToDescribe(image=r.image, path=folder.parent / r.image, gt=r.mos) for r in index.records[:6]]
    out = tmp_path / "texts.jsonl"
    summary = describe(describer, images, [0, 1], out, dataset="synthetic", batch_size=4, progress=False)
    assert summary.written == 12 and summary.failed == 0
    first = read_texts(out)
    assert sorted(t.key for t in first) == sorted((im.image, seed) for im in images for seed in (0, 1))
    assert all(t.score == t.gt and t.text and t.error is None for t in first)

    summary = describe(describer, images, [0, 1, 2], out, dataset="synthetic", batch_size=4, progress=False)
    assert summary.skipped == 12 and summary.written == 6
    texts = read_texts(out)
    assert len(texts) == 18 and len({t.key for t in texts}) == 18
    assert texts[:12] == first

    again = tmp_path / "again.jsonl"
    describe(describer, images, [0, 1], again, dataset="synthetic", batch_size=4, progress=False)
    assert [t.text for t in read_texts(again)] == [t.text for t in first]
