"""One input contract for the Python API (issue 23, items 2 and 8): every form a user may hold is checked the
same way before a model sees it, in the metric path and in the differentiable path (loss, reward with gradients).

Expected scores come from the pixels themselves: the ``brightness`` test model's score is the mean 8-bit level,
computed here with numpy; a form of the same image must give the same score as its plain ``[1, 3, H, W]`` form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from iqabench import ImageReward, create_model
from iqabench.errors import IQABenchError
from tests.differentiable import model_options, photo
from tests.helpers import Brightness, registry_with

PIXELS = (np.arange(3 * 16 * 20) * 7 % 256).astype(np.uint8).reshape(16, 20, 3)  # HxWx3, every level used
MEAN = float(PIXELS.mean())


@pytest.fixture
def brightness():
    return create_model("brightness", registry=registry_with(Brightness))


@pytest.fixture(scope="module")
def rali():
    return create_model("rali", **model_options("rali", {}, None))


def chw_uint8() -> torch.Tensor:
    return torch.from_numpy(PIXELS).permute(2, 0, 1).contiguous()


def one_line_error(call) -> str:
    with pytest.raises(IQABenchError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_a_uint8_chw_tensor_is_read_as_value_over_255_like_its_batch(brightness):
    """On main a single [3, H, W] uint8 tensor skipped the conversion (the brightness model gave 253.9 here)."""
    expected = pytest.approx(MEAN, abs=1e-3)
    assert float(brightness(chw_uint8())[0]) == expected
    assert float(brightness(chw_uint8()[None])[0]) == expected
    assert float(brightness([chw_uint8()])[0]) == expected
    assert float(brightness(chw_uint8().float() / 255)[0]) == expected
    assert float(brightness(PIXELS)[0]) == expected and float(brightness(Image.fromarray(PIXELS))[0]) == expected


def test_grey_tensors_are_replicated_to_rgb_as_grey_files_are(brightness):
    grey = torch.from_numpy(PIXELS[..., 0].copy())
    expected = pytest.approx(float(PIXELS[..., 0].mean()), abs=1e-3)
    assert float(brightness(grey)[0]) == expected  # [H, W]
    assert float(brightness(grey[None])[0]) == expected  # [1, H, W]
    assert float(brightness(grey[None, None].float() / 255)[0]) == expected  # [B, 1, H, W] float
    assert float(brightness(PIXELS[..., :1])[0]) == expected  # HxWx1 array


@pytest.mark.parametrize("form", ["[3, H, W]", "[1, 3, H, W]", "list of [3, H, W]", "float array", "PIL F image"])
def test_nan_pixels_are_refused_in_every_form(brightness, form):
    """On main a NaN in a [3, H, W] tensor or a float PIL image was scored (NaN became 0)."""
    pixels = chw_uint8().float() / 255
    pixels[1, 2, 3] = float("nan")
    values = {
        "[3, H, W]": lambda: pixels,
        "[1, 3, H, W]": lambda: pixels[None],
        "list of [3, H, W]": lambda: [pixels],
        "float array": lambda: pixels.permute(1, 2, 0).numpy(),
        "PIL F image": lambda: Image.fromarray(pixels[1].numpy(), mode="F"),
    }
    assert "NaN" in one_line_error(lambda: brightness(values[form]()))


def test_a_float_file_with_nan_pixels_fails_with_its_reason_not_a_score(brightness, tmp_path):
    grey = np.full((16, 20), 0.5, dtype=np.float32)
    grey[3, 4] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(grey, mode="F").save(path)
    scores = brightness([path])
    assert math.isnan(float(scores[0])) and "NaN" in brightness.last_errors[0]


def test_out_of_range_floats_are_refused_for_a_single_image_too(brightness):
    """On main a [3, H, W] float tensor in [0, 2.55] was clamped and scored."""
    assert "x / 255" in one_line_error(lambda: brightness(chw_uint8().float() / 100))
    assert "(x + 1) / 2" in one_line_error(lambda: brightness(chw_uint8().float() / 127.5 - 1))
    assert "infinite" in one_line_error(lambda: brightness(torch.full((3, 4, 4), float("inf"))))


@pytest.mark.parametrize(("value", "expected"), [
    (lambda: chw_uint8().permute(1, 2, 0).float() / 255, r"channels-last: x.permute\(2, 0, 1\)"),
    (lambda: chw_uint8().permute(1, 2, 0)[None], r"channels-last: x.permute\(0, 3, 1, 2\)"),
    (lambda: chw_uint8()[None, None], r"5 dimensions .*x.flatten\(0, -4\)"),
    (lambda: chw_uint8()[0, 0], r"got 1 dimensions"),
    (lambda: torch.zeros(4, 8, 8), r"RGBA: drop or composite the alpha channel"),
    (lambda: chw_uint8().to(torch.int64), r"float in \[0, 1\] or uint8, got torch.int64"),
    (lambda: chw_uint8() > 128, r"float in \[0, 1\] or uint8, got torch.bool"),
    (lambda: PIXELS.transpose(2, 0, 1), r"channels-first: array.transpose\(1, 2, 0\)"),
    (lambda: np.stack([PIXELS.transpose(2, 0, 1)]), r"NxHxWxC.*batch.transpose\(0, 2, 3, 1\)"),
    (lambda: PIXELS[None, None], r"stack of batches or a video"),
    (lambda: PIXELS.astype(np.uint16), r"uint8, or float in \[0, 1\]; got uint16"),
    (lambda: np.zeros((8, 8, 4), dtype=np.float32), r"Drop or composite the alpha channel"),
    (lambda: [chw_uint8()[None]], r"a list holds one image per tensor"),
])
def test_every_other_form_is_a_one_line_error_saying_how_to_convert(brightness, value, expected):
    import re

    assert re.search(expected, one_line_error(lambda: brightness(value())))


@pytest.mark.slow
def test_rali_tensor_path_gives_one_score_per_image_whatever_its_form(rali):
    """The differentiable path: uint8 [3, H, W], uint8 [1, 3, H, W] and float [1, 3, H, W] of one image agree
    (on main the [3, H, W] uint8 tensor reached RALI's tensor path unconverted)."""
    uint8 = torch.from_numpy(np.array(photo(80, 64))).permute(2, 0, 1).contiguous()
    batch = float(rali(uint8[None])[0])
    assert float(rali(uint8)[0]) == pytest.approx(batch, abs=1e-6)
    assert float(rali(uint8[None].float() / 255)[0]) == pytest.approx(batch, abs=1e-6)
    assert float(rali([uint8])[0]) == pytest.approx(batch, abs=1e-6)


@pytest.mark.slow
def test_the_differentiable_path_refuses_nan_and_reads_uint8_the_same_way(rali):
    loss = rali.as_loss()
    uint8 = torch.from_numpy(np.array(photo(80, 64))).permute(2, 0, 1).contiguous()
    assert torch.allclose(loss.scores(uint8), loss.scores(uint8[None].float() / 255), atol=1e-6)
    pixels = (uint8[None].float() / 255).requires_grad_(True)
    with torch.no_grad():
        poisoned = pixels.detach().clone()
        poisoned[0, 0, 5, 5] = float("nan")
    assert "NaN" in one_line_error(lambda: loss(poisoned.requires_grad_(True)))
    assert "NaN" in one_line_error(lambda: ImageReward(rali)(poisoned.requires_grad_(True)))
    assert "channels-last" in one_line_error(lambda: loss(pixels.detach().permute(0, 2, 3, 1)))
    loss(pixels).backward()  # a clean batch still carries gradients to the pixels
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all()


@pytest.mark.parametrize(("scores", "expected"), [
    ([0.0, 25.0, 130.0], [1.0, 0.75, 0.0]),
    ((50.0,), [0.5]),
    (np.array([0.0, 25.0, float("nan")]), np.array([1.0, 0.75, float("nan")])),
    (25.0, 0.75),
    (25, 0.75),
    (np.float32(100.0), 0.0),
])
def test_to_reward_takes_lists_arrays_and_numbers_and_gives_back_the_same_kind(scores, expected):
    """NIQE: lower is better on [0, 100], so the reward is 1 - s / 100, clipped to [0, 1] (by hand)."""
    niqe = create_model("niqe")
    reward = niqe.to_reward(scores)
    assert type(reward) is type(expected)
    np.testing.assert_allclose(reward, expected)
    assert niqe.to_reward(130.0, clamp=False) == pytest.approx(-0.3)


@pytest.mark.parametrize("scores", ["3.5", [1.0, None], [[1.0], [2.0, 3.0]], {"a": 1.0}, True])
def test_to_reward_on_what_is_not_scores_is_a_clear_error(scores):
    message = one_line_error(lambda: create_model("niqe").to_reward(scores))
    assert message.startswith("to_reward takes")
