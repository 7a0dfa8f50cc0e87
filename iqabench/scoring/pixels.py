"""Image batches as float tensors: the input of the tensor path of differentiable models.

A batch is ``[B, 3, H, W]`` with values in [0, 1] (RGB), the convention of
torchvision and of most restoration and generation models. The operations here
are the torch twins of what the PIL preprocessors do, written so gradients
flow through them:

* :func:`resize_bicubic` resamples as Pillow's ``Image.resize(..., BICUBIC)``
  does: antialiased when shrinking (the filter widened by the scale factor,
  Pillow's ``a = -0.5`` cubic, which torch's ``antialias=True`` reproduces),
  one horizontal pass then one vertical pass, each clipped to the pixel range.
  Pillow also rounds to 8 bits after each pass; rounding has no gradient, so
  it is left out. On the test images of ``tests/test_pixels.py`` the result
  is within 1.2 grey levels of Pillow's (at most; 0.3 on average), which is
  that rounding;
* :func:`normalize` is the per-channel ``(x - mean) / std`` of every CLIP-like
  preprocessor;
* :func:`as_pixel_batch` checks what a user passes, :func:`to_pil_images`
  quantises a batch to 8-bit images for models that only read PIL images.

torch is imported inside the functions: ``import iqabench`` does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from iqabench.errors import IQABenchError

if TYPE_CHECKING:
    import torch
    from PIL import Image

#: how far a float batch may stray outside [0, 1] before it is refused (float rounding of a sigmoid or a clamp)
RANGE_SLACK = 1e-4


def as_pixel_batch(pixels: torch.Tensor, *, check_range: bool = True, what: str = "image tensor") -> torch.Tensor:
    """``[B, 3, H, W]`` float pixels in [0, 1] from any tensor form of the input contract, or a one-line error.

    The forms: ``[H, W]`` (one grey image), ``[C, H, W]`` (one image) and ``[B, C, H, W]`` (a batch),
    channels-first, ``C`` 1 (grey, replicated to RGB as files are) or 3. uint8 values are read as
    ``value / 255``; float values must be finite and, with ``check_range``, within [0, 1]: NaN, infinities and
    other ranges are refused with what was found rather than clipped (a [-1, 1] or [0, 255] batch would
    otherwise be scored as a different image). Other dtypes are refused. Gradients flow through every step.
    """
    import torch

    if not isinstance(pixels, torch.Tensor):
        raise IQABenchError(f"expected a torch tensor of pixels, got {type(pixels).__name__}.")
    shape = list(pixels.shape)
    if pixels.dim() == 2:
        pixels = pixels[None, None]
    elif pixels.dim() == 3:
        pixels = pixels[None]
    elif pixels.dim() != 4:
        hint = " A video or a stack of batches: flatten it with x.flatten(0, -4)." if pixels.dim() > 4 else ""
        raise IQABenchError(
            f"image tensors are [H, W], [C, H, W] or [B, C, H, W] (C = 1 or 3); got {pixels.dim()} dimensions "
            f"{shape}.{hint}"
        )
    if pixels.shape[1] not in (1, 3):
        if pixels.shape[-1] in (1, 3, 4):
            hint = (" It looks channels-last: x.permute(2, 0, 1)" if len(shape) == 3 else
                    " It looks channels-last: x.permute(0, 3, 1, 2)")
            hint += ", then drop alpha with [..., :3, :, :]." if pixels.shape[-1] == 4 else "."
        elif pixels.shape[1] == 4:
            hint = " RGBA: drop or composite the alpha channel (x[:, :3])."
        else:
            hint = ""
        raise IQABenchError(
            f"image tensors are channels-first with 1 or 3 channels ([C, H, W] or [B, C, H, W]); got shape "
            f"{shape}.{hint}"
        )
    if pixels.dtype == torch.uint8:
        pixels = pixels.float() / 255.0
    elif not pixels.is_floating_point():
        raise IQABenchError(f"image tensors are float in [0, 1] or uint8, got {pixels.dtype}.")
    elif pixels.numel():
        _check_values(pixels.detach(), check_range, what)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1).contiguous()
    return pixels


def _check_values(pixels: torch.Tensor, check_range: bool, what: str) -> None:
    """Refuse NaN and infinite pixels always, and values outside [0, 1] when ``check_range``."""
    import torch

    low, high = (float(v) for v in torch.aminmax(pixels))
    if low != low or high != high:  # NaN propagates through min and max
        count = int(torch.isnan(pixels).sum())
        raise IQABenchError(
            f"{what} holds {count} NaN pixel value{'s' if count > 1 else ''}; iqabench does not score NaN "
            "pixels (no number can stand for them). Find where they came from, or replace them: "
            "torch.nan_to_num(x, nan=0.0)."
        )
    if abs(low) == float("inf") or abs(high) == float("inf"):
        raise IQABenchError(f"{what} values lie in [{low:g}, {high:g}]: infinite pixels cannot be scored.")
    if check_range and (low < -RANGE_SLACK or high > 1 + RANGE_SLACK):
        hint = ""
        if low < -RANGE_SLACK and high <= 1 + RANGE_SLACK:
            hint = " (a [-1, 1] batch is (x + 1) / 2)"
        elif low >= -RANGE_SLACK and 1 + RANGE_SLACK < high <= 255:
            hint = " (a [0, 255] batch is x / 255)"
        raise IQABenchError(
            f"{what} values lie in [{low:g}, {high:g}]; iqabench reads float images as [0, 1]{hint}. "
            "Scale them, or clamp them with x.clamp(0, 1)."
        )


def resize_bicubic(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``pixels`` resampled to ``size = (height, width)`` as Pillow's bicubic resize does (see the module)."""
    import torch.nn.functional as F

    height, width = size
    if pixels.shape[-1] != width:
        pixels = F.interpolate(pixels, size=(pixels.shape[-2], width), mode="bicubic", antialias=True,
                               align_corners=False).clamp(0.0, 1.0)
    if pixels.shape[-2] != height:
        pixels = F.interpolate(pixels, size=(height, width), mode="bicubic", antialias=True,
                               align_corners=False).clamp(0.0, 1.0)
    return pixels


def crop(pixels: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    if top < 0 or left < 0 or top + height > pixels.shape[-2] or left + width > pixels.shape[-1]:
        raise IQABenchError(
            f"cannot crop {height}x{width} at ({top}, {left}) from an image of {pixels.shape[-2]}x{pixels.shape[-1]}."
        )
    return pixels[..., top : top + height, left : left + width]


def normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel; uint8 input is read as ``value / 255`` first."""
    import torch

    if pixels.dtype == torch.uint8:
        pixels = pixels.float() / 255.0
    shape = (1,) * (pixels.dim() - 3) + (-1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=pixels.dtype, device=pixels.device).reshape(shape)
    std_t = torch.as_tensor(std, dtype=pixels.dtype, device=pixels.device).reshape(shape)
    return (pixels - mean_t) / std_t


def to_pil_images(pixels: torch.Tensor) -> list[Image.Image]:
    """8-bit RGB images of a [B, 3, H, W] batch in [0, 1] (rounded, as saving the batch to PNG would)."""
    import numpy as np
    from PIL import Image

    array = (pixels.detach().float().clamp(0, 1) * 255.0).round().to("cpu").numpy().astype(np.uint8)
    return [Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))) for image in array]


def pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """A ``[3, H, W]`` float tensor in [0, 1] of an 8-bit RGB image (the exact values, no resampling)."""
    import numpy as np
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0
