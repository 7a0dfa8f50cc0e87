"""Image loading edge cases a new user hits: bit depths, modes, corrupt and missing files."""

import numpy as np
import pytest
from PIL import Image

from iqabench.errors import ImageLoadError
from iqabench.scoring.images import load_image


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert image.mode == "RGB"
    assert np.asarray(image)[0, :, 0].tolist() == [0, round(32768 / 65535 * 255), 255]


def test_grey_image_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.array([[10, 200]], dtype=np.uint8), mode="L").save(path)
    array = np.asarray(load_image(path))
    assert array.shape == (1, 2, 3) and (array[..., 0] == array[..., 2]).all() and array[0, 1, 1] == 200


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red
    rgba[0, 1] = [0, 0, 0, 0]  # transparent
    Image.fromarray(rgba, mode="RGBA").save(path)
    array = np.asarray(load_image(path))
    assert array[0, 0].tolist() == [255, 0, 0]
    assert array[0, 1].tolist() == [255, 255, 255]


def test_truncated_jpeg_is_an_error(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg"):
        load_image(path)


def test_not_an_image_and_missing(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "absent.png")
