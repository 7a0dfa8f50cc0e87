"""The tensor path's preprocessing against the PIL path it stands in for.

Reference values are Pillow's own ``Image.resize(..., BICUBIC)`` and the PIL
transforms the models run (RALI's three encoders, CLIP-IQA's resize, Qwen2-VL's
processor); the tolerance is the one documented in ``iqabench/scoring/pixels.py``: the
torch twin leaves out Pillow's rounding to 8 bits after each pass, so it may
differ by a little over one grey level, and by about 0.3 on average.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from iqabench.errors import IQABenchError
from iqabench.scoring.pixels import as_pixel_batch, normalize, pil_to_pixels, resize_bicubic, to_pil_images
from tests.test_clipiqa import TINY_VIT, weights  # noqa: F401  (the tiny open_clip fixture)

#: documented bound (grey levels): one rounding per pass, plus float error
MAX_LEVELS = 1.2
MEAN_LEVELS = 0.4

PHOTOS = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea}


def photo(name: str, width: int, height: int) -> Image.Image:
    """A real photograph at an arbitrary size (odd and even sides), resized once by PIL to make the input."""
    return Image.fromarray(PHOTOS[name]()).resize((width, height), Image.BICUBIC)


def levels(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> tuple[float, float]:
    difference = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(difference.max()), float(difference.mean())


@pytest.mark.parametrize("name", sorted(PHOTOS))
@pytest.mark.parametrize("size", [(224, 168), (97, 131), (301, 226), (64, 64)])
def test_bicubic_resize_matches_pillow_within_a_grey_level(name, size):
    image = photo(name, 203, 157)
    expected = np.asarray(image.resize(size, Image.BICUBIC), dtype=np.float64)
    resized = resize_bicubic(pil_to_pixels(image)[None], (size[1], size[0]))[0]
    worst, mean = levels(resized.permute(1, 2, 0).numpy() * 255.0, expected)
    assert worst <= MAX_LEVELS and mean <= MEAN_LEVELS, (worst, mean)


def test_resize_keeps_the_gradient_and_clips_like_pillow():
    pixels = torch.rand(1, 3, 30, 40, requires_grad=True)
    out = resize_bicubic(pixels, (17, 23))
    assert out.shape == (1, 3, 17, 23) and 0.0 <= float(out.detach().min()) and float(out.detach().max()) <= 1.0
    out.sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0
    assert resize_bicubic(pixels, (30, 40)) is pixels  # same size: untouched, as Pillow copies


def test_pixel_batches_are_checked_and_quantised_exactly():
    image = photo("coffee", 41, 29)
    exact = pil_to_pixels(image)
    assert np.array_equal(np.asarray(to_pil_images(exact[None])[0]), np.asarray(image))
    uint8 = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    assert torch.equal(as_pixel_batch(uint8), exact[None])
    with pytest.raises(IQABenchError, match=r"\[-1, 1\].*\(x \+ 1\) / 2"):
        as_pixel_batch(exact * 2 - 1)
    with pytest.raises(IQABenchError, match=r"x / 255"):
        as_pixel_batch(exact * 255)
    with pytest.raises(IQABenchError, match=r"channels-first.*\[B, C, H, W\].*permute"):
        as_pixel_batch(exact.permute(1, 2, 0)[None])
    assert torch.allclose(normalize(uint8[None], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), exact[None] * 2 - 1)


def encoder_transforms(weights):  # noqa: F811
    """(name, PIL transform, tensor transform, std) of each RALI encoder kind, at small sizes."""
    from iqabench_plugins.rali.encoders import (
        EfficientNetMiniLMEncoder,
        HFImageTransform,
        OpenClipEncoder,
        ResizeCropNormalize,
        clip_image_processor_class,
    )

    offline = ResizeCropNormalize(size=40, crop=40, mean=(0.5,) * 3, std=(0.5,) * 3)
    processor = clip_image_processor_class()(size={"shortest_edge": 40}, crop_size={"height": 40, "width": 40})
    hf = HFImageTransform(processor)
    open_clip = OpenClipEncoder.create(TINY_VIT, weights[TINY_VIT], with_text=False)
    return [
        ("efficientnet-minilm", EfficientNetMiniLMEncoder.transform,
         EfficientNetMiniLMEncoder.transform.pixel_transform(), 0.5),
        ("efficientnet-minilm at 40", offline, offline.pixel_transform(), 0.5),
        ("hf-clip", hf, hf.pixel_transform(), min(processor.image_std)),
        ("open-clip", open_clip.image_transform(), open_clip.pixel_transform(), min(open_clip.preprocess_cfg["std"])),
    ]


@pytest.mark.parametrize("width,height", [(203, 157), (157, 203), (81, 80), (65, 97), (224, 224)])
def test_rali_tensor_transforms_match_each_encoders_pil_transform(weights, width, height):  # noqa: F811
    """Same output size and crop offset (a one-pixel shift of a photo would differ by far more than a level)."""
    image = photo("astronaut", width, height)
    for name, pil_transform, pixel_transform, std in encoder_transforms(weights):
        expected = pil_transform(image)
        got = pixel_transform(pil_to_pixels(image)[None])[0]
        assert got.shape == expected.shape, name
        worst, mean = levels(got * std * 255.0, expected * std * 255.0)
        assert worst <= MAX_LEVELS and mean <= MEAN_LEVELS, (name, worst, mean)


@pytest.mark.parametrize("resize", [None, 48, (40, 56)])
def test_clipiqa_tensor_transform_matches_its_pil_transform(resize):
    from iqabench_plugins.clipiqa.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    from iqabench_plugins.clipiqa.preprocess import ClipImageTransform

    transform = ClipImageTransform(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, resize=resize)
    image = photo("chelsea", 97, 71)
    expected = transform(image)
    got = transform.transform_pixels(pil_to_pixels(image)[None])[0]
    assert got.shape == expected.shape
    worst, mean = levels(got * min(OPENAI_CLIP_STD) * 255.0, expected * min(OPENAI_CLIP_STD) * 255.0)
    assert worst <= MAX_LEVELS and mean <= MEAN_LEVELS, (worst, mean)


def test_qwen_vl_patches_lay_pixels_out_as_the_processor_does():
    from iqabench_plugins.mllm.generation import FitForVisionTower
    from iqabench_plugins.mllm.q_align import qwen_vl_patches
    from iqabench_plugins.mllm.tiny import build_byte_processor

    processor = build_byte_processor(min_pixels=56 * 56, max_pixels=112 * 112)
    images = processor.image_processor
    fitted = FitForVisionTower(min_pixels=56 * 56, max_pixels=112 * 112)(photo("coffee", 150, 90))
    expected = images(images=[fitted], return_tensors="pt")["pixel_values"]
    got = qwen_vl_patches(normalize(pil_to_pixels(fitted)[None], images.image_mean, images.image_std),
                          images.patch_size, images.merge_size, images.temporal_patch_size)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
