"""Reading images the way IQA needs: faithfully, or not at all.

Every image is returned as 8-bit RGB. Grey images are replicated to three
channels, 16-bit images are scaled (not clipped) to 8 bits, palette images are
expanded, and images with an alpha channel are composited on white (what a
viewer shows). A missing, truncated or corrupt file raises
:class:`ImageLoadError` with the path and the reason; it is never replaced by
a blank image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from iqabench.errors import ImageLoadError

# Truncated files must fail, not decode to a partly grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without clipping high bit depths."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and array.max() > 255):
            peak = 65535.0
        elif mode == "F" and array.max() <= 1.0:
            peak = 1.0
        else:
            peak = 255.0
        grey = np.clip(np.round(array / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` into an 8-bit RGB image, or raise :class:`ImageLoadError`."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"image not found: {path}")
    if path.is_dir():
        raise ImageLoadError(f"expected an image file but {path} is a folder")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image).copy()
    except UnidentifiedImageError:
        raise ImageLoadError(f"not an image Pillow can read: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"cannot decode {path}: {exc} (the file is truncated or corrupt)") from None

