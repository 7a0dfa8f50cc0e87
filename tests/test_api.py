"""The Python API as a metric: ``create_model(name)(inputs)`` on what users hold.

Expected values come from formulas written here (the mean grey level of the
``brightness`` test model, NIQE's documented range and direction) or from the
model scoring the same pixels another way (a file read back, a PIL image).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from iqabench import ModelTraits, Scorer, create_model
from iqabench.errors import IQABenchError
from iqabench.scoring.pixels import pil_to_pixels
from tests.differentiable import model_options, photo, random_images
from tests.helpers import Brightness, registry_with
from tests.test_clipiqa import weights  # noqa: F401  (the tiny open_clip fixture)


@pytest.fixture
def brightness() -> Brightness:
    return create_model("brightness", registry=registry_with(Brightness))


def mean_level(image: Image.Image) -> float:
    return float(np.asarray(image.convert("RGB"), dtype=np.float64).mean())


def test_every_kind_of_input_gives_the_same_scores(brightness, tmp_path):
    """Files, PIL images, uint8 and float arrays, uint8 and float tensors of the same pixels: one set of scores."""
    images = random_images(3)
    expected = torch.tensor([mean_level(image) for image in images], dtype=torch.float32)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    arrays = [np.asarray(image) for image in images]
    pixels = torch.stack([pil_to_pixels(image) for image in images])
    inputs = {
        "paths": [str(p) for p in paths],
        "pathlib paths": paths,
        "PIL images": images,
        "uint8 arrays": arrays,
        "a uint8 array batch": np.stack(arrays),
        "float arrays": [a.astype(np.float32) / 255 for a in arrays],
        "a float tensor batch": pixels,
        "a uint8 tensor batch": (pixels * 255).round().to(torch.uint8),
        "a list of [3, H, W] tensors": list(pixels),
    }
    for kind, value in inputs.items():
        scores = brightness(value)
        assert scores.dtype == torch.float32 and torch.allclose(scores, expected, atol=1e-3), kind
        assert brightness.last_errors == [None, None, None], kind
    assert float(brightness(str(paths[0]))[0]) == pytest.approx(float(expected[0]), abs=1e-3)
    assert float(brightness(images[1])[0]) == pytest.approx(float(expected[1]), abs=1e-3)
    grey = np.asarray(images[2].convert("L"))
    assert float(brightness(grey)[0]) == pytest.approx(float(grey.mean()), abs=1e-3)  # grey HxW read as RGB


def test_batches_and_decode_workers_are_used(brightness, tmp_path):
    images = random_images(5)
    paths = []
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    brightness.model.calls = 0
    scores = brightness(images, batch_size=2)
    assert brightness.model.calls == 3 and len(scores) == 5
    assert torch.equal(brightness(paths, batch_size=2, num_workers=1), brightness(paths))


def test_an_image_that_cannot_be_scored_is_nan_with_its_reason(brightness, tmp_path):
    good = tmp_path / "good.png"
    random_images(1)[0].save(good)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    scores = brightness([good, tmp_path / "missing.png", tmp_path / "broken.jpg"])
    assert not math.isnan(float(scores[0])) and math.isnan(float(scores[1])) and math.isnan(float(scores[2]))
    first, missing, broken = brightness.last_errors
    assert first is None and "image not found" in missing and "missing.png" in missing
    assert "broken.jpg" in broken
    assert [s.failed for s in brightness.last_scores] == [False, True, True]


@pytest.mark.slow
def test_a_model_refusing_one_image_of_a_tensor_batch_fails_only_that_image(weights, tmp_path):  # noqa: F811
    """CLIP's ResNet needs 32 px per side: in a list of tensors the small one is NaN with the reason, the rest
    are scored by the tensor path (and equal to the PIL path, full resolution needs no resampling)."""
    model = create_model("clip-iqa", **model_options("clip-iqa", weights, tmp_path))
    big, small = pil_to_pixels(photo(64, 48)), pil_to_pixels(photo(24, 20))
    scores = model([big, small, big])
    assert math.isnan(float(scores[1])) and "at least 32 px" in model.last_errors[1]
    assert float(scores[0]) == float(scores[2]) == pytest.approx(float(model([photo(64, 48)])[0]), abs=1e-6)


def test_tensors_stay_on_their_device_and_keep_no_graph(weights, tmp_path):  # noqa: F811
    model = create_model("rali", **model_options("rali", weights, tmp_path))
    pixels = pil_to_pixels(photo(80, 64))[None].requires_grad_(True)
    scores = model(pixels)
    assert scores.device == pixels.device and not scores.requires_grad
    as_array = model(pixels.detach()[0].permute(1, 2, 0).numpy())  # a float array takes the tensor path too
    assert torch.allclose(as_array, scores)


def test_bad_inputs_are_clear_errors(brightness):
    with pytest.raises(IQABenchError, match="one kind of image"):
        brightness([random_images(1)[0], "photo.png"])
    with pytest.raises(IQABenchError, match=r"cannot score a dict"):
        brightness({"image": "x"})
    with pytest.raises(IQABenchError, match=r"values lie in \[0, 255\].*x / 255"):
        brightness(torch.linspace(0, 255, 192).reshape(1, 3, 8, 8))
    with pytest.raises(IQABenchError, match="uint8, or float in"):
        brightness(np.zeros((8, 8, 3), dtype=np.uint16))
    with pytest.raises(IQABenchError, match="batch size"):
        brightness(random_images(1), batch_size=0)
    assert brightness([]).shape == (0,)


def test_to_reward_maps_scores_onto_0_1_higher_better():
    """NIQE: lower is better on [0, 100]; CLIP-IQA+ style: higher is better on [1, 5]. By hand."""
    niqe = create_model("niqe")
    scores = torch.tensor([0.0, 25.0, 100.0, 130.0, float("nan")])
    reward = niqe.to_reward(scores)
    assert torch.allclose(reward[:4], torch.tensor([1.0, 0.75, 0.0, 0.0])) and math.isnan(float(reward[4]))
    assert float(niqe.to_reward(scores, clamp=False)[3]) == pytest.approx(-0.3)

    class OneToFive(Brightness):
        name = "one-to-five"
        score_range = (1.0, 5.0)

    assert torch.allclose(Scorer(OneToFive()).to_reward(torch.tensor([1.0, 3.0, 5.0, 6.0])),
                          torch.tensor([0.0, 0.5, 1.0, 1.0]))


def test_a_model_declared_differentiable_needs_a_tensor_path(capsys):
    """The registry refuses the class (with a warning naming it) rather than failing at the first loss."""
    import types
    import warnings

    from iqabench import hookimpl
    from iqabench.cli import main
    from iqabench.registry.discovery import PluginRegistry

    class Claims(Brightness):
        name = "claims"
        traits = ModelTraits(differentiable=True)

    registry = PluginRegistry(load_entry_points=False)
    registry.register(types.SimpleNamespace(iqabench_models=hookimpl(lambda: [Claims, Brightness])), name="claims")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert registry.names("model") == ["brightness"]
    assert any("declares `differentiable` but has no `score_pixels`" in str(w.message) for w in caught)
    assert main(["list", "models", "--json"]) == 0
    listed = {m["name"]: m["differentiable"] for m in json.loads(capsys.readouterr().out)}
    assert listed["rali"] and listed["q-align"] and not listed["niqe"] and not listed["q-insight"]


def test_an_empty_tensor_batch_gives_an_empty_score_tensor():
    scores = create_model("niqe")(torch.zeros(0, 3, 64, 64))
    assert scores.shape == (0,)
