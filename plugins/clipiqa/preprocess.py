"""Turning a decoded image into CLIP's input, in the decode workers.

CLIP-IQA feeds the image at full resolution, only normalised with CLIP's
mean and std: resizing blurs away exactly the artefacts being judged. A
resize is offered for speed, and fixed-resolution (ViT) towers need one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from iqabench.api import IQABenchError, normalize, resize_bicubic

if TYPE_CHECKING:
    import torch

#: ``None`` (full resolution), an int (shorter side in pixels) or ``[height, width]``
ResizeOption = int | Sequence[int] | None


def check_resize(resize: ResizeOption) -> int | tuple[int, int] | None:
    """Validate a ``resize`` option and return it in canonical form."""
    if resize is None:
        return None
    if isinstance(resize, bool):
        raise IQABenchError(f"resize={resize!r}: pass None (full resolution), an int or [height, width].")
    if isinstance(resize, int):
        if resize < 1:
            raise IQABenchError(f"resize={resize} must be a positive number of pixels.")
        return resize
    if isinstance(resize, Sequence) and len(resize) == 2 and all(isinstance(v, int) and v > 0 for v in resize):
        return (int(resize[0]), int(resize[1]))
    raise IQABenchError(
        f"resize={resize!r}: pass None (full resolution), an int (shorter side) or [height, width] in pixels."
    )


def describe_resize(resize: int | tuple[int, int] | None) -> str:
    if resize is None:
        return "full"
    if isinstance(resize, int):
        return f"shorter side {resize}"
    return f"{resize[0]}x{resize[1]}"


@dataclass(frozen=True)
class ClipImageTransform:
    """PIL RGB image -> normalised float32 tensor (3, H, W); picklable for decode workers.

    ``resize`` as an int scales the shorter side to it (aspect kept), as a
    pair sets (height, width); both bicubic, CLIP's own interpolation.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int | tuple[int, int] | None = None
    hflip: bool = False

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import torch

        image = self.resized(image.convert("RGB"))
        if self.hflip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def resized(self, image: Image.Image) -> Image.Image:
        size = self.resized_size(*image.size)
        return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` after the resize option."""
        if self.resize is None:
            return width, height
        if isinstance(self.resize, int):
            scale = self.resize / min(width, height)
            return max(1, round(width * scale)), max(1, round(height * scale))
        return self.resize[1], self.resize[0]

    def transform_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The same steps on a [B, 3, H, W] batch in [0, 1], in torch (differentiable; resampling within a grey
        level of PIL's, see :mod:`iqabench.scoring.pixels`)."""
        width, height = self.resized_size(pixels.shape[-1], pixels.shape[-2])
        pixels = resize_bicubic(pixels, (height, width))
        if self.hflip:
            pixels = pixels.flip(-1)
        return normalize(pixels, self.mean, self.std)
