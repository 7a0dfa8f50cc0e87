"""Reading images the way IQA needs: faithfully, or not at all.

Every image is returned as 8-bit RGB, as a viewer would show it:

* orientation: the EXIF orientation tag is applied (a phone photo taken upright
  is scored upright), unless ``exif_orientation=False``; the label files of the
  eight datasets name images whose pixels are already stored upright, so this
  changes nothing for them and matters for users' own photos;
* bit depth: grey images are replicated to three channels; 16-bit images are
  scaled (not clipped) to 8 bits; 32-bit integer images are read as 8-bit
  values when they fit, else as 16-bit ones; float images must hold values in
  [0, 1] (the float convention of PIL, scikit-image and torchvision): any other
  range is ambiguous and refused with the range found, never clipped, and NaN
  or infinite pixels are refused;
* alpha: images with transparency are composited on white;
* animation: only the first frame of an animated GIF, PNG or WebP is scored;
* size: an image above ``max_megapixels`` is refused before it is decoded,
  with a message naming the suite setting that downscales it
  (``preprocessing.max_side``) or raises the limit;
* JPEG draft decoding (``jpeg_draft``, off by default): a JPEG is decoded by
  libjpeg at 1/2, 1/4 or 1/8 scale (DCT scaling), the largest reduction that
  keeps it at least the model's ``decode_size()``. It is 2-4x faster than a
  full decode but its pixels are not those of a full decode followed by the
  model's resize, so scores change slightly (docs/efficiency.md); it is
  recorded with the predictions like every reading setting.

A missing, truncated or corrupt file raises :class:`ImageLoadError` with the
path and the reason; it is never replaced by a blank image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from iqabench.errors import ImageLoadError

# Truncated files must fail, not decode to a partly grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# iqabench applies its own, clearer size limit (ImageReading.max_megapixels) before decoding.
Image.MAX_IMAGE_PIXELS = None

#: default limit: 12000x9000 images took 5.8 GB in NIQE's full-resolution float64 pipeline
DEFAULT_MAX_MEGAPIXELS = 64.0
#: with downscaling (``max_side``), images up to this multiple of the limit are decoded and then shrunk
DOWNSCALE_FACTOR = 4.0


@dataclass(frozen=True)
class ImageReading:
    """How files become RGB images; recorded with predictions because it changes what models see."""

    exif_orientation: bool = True
    #: refuse larger images (``None``: no limit) unless ``downscaled`` says they will be made smaller
    max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS
    #: the run resizes every image to at most this many pixels on its longer side, right after decoding
    downscaled_to: int | None = None
    #: decode JPEGs at a reduced scale, down to the model's ``decode_size()`` (faster, not bit-exact)
    jpeg_draft: bool = False


def image_backend() -> str:
    """The imaging library that decodes and resizes, with its version.

    Pillow-SIMD, installed in Pillow's place (``pip uninstall pillow; CC="cc -mavx2" pip install pillow-simd``),
    resizes about 7x faster; it decodes JPEGs to the same pixels, but its resampling differs from Pillow's by
    up to one grey level (measured, docs/efficiency.md), so models that resize see slightly different pixels.
    Runs record which one they used (``provenance.package_versions``).
    """
    from importlib import metadata

    import PIL

    for distribution in ("pillow-simd", "Pillow-SIMD"):
        try:
            return f"Pillow-SIMD {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return f"Pillow {PIL.__version__}"


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without clipping high bit depths; refuse ambiguous float ranges."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode == "F" and not np.isfinite(array).all():
            raise ValueError(
                f"float image with {int((~np.isfinite(array)).sum())} NaN or infinite pixel values: iqabench does "
                "not score them (no number can stand for them)"
            )
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if mode.startswith("I;16"):
            peak = 65535.0
        elif mode == "I":
            if low < 0 or high > 65535:
                raise ValueError(f"32-bit integer image with values {low:g}..{high:g}: outside 8 and 16 bits")
            peak = 255.0 if high <= 255 else 65535.0
        else:
            if low < 0 or high > 1:
                raise ValueError(
                    f"float image with values {low:g}..{high:g}: iqabench reads float images as [0, 1]; "
                    "save it as 8- or 16-bit, or scale it to [0, 1]"
                )
            peak = 1.0
        grey = np.clip(np.round(array / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(
    path: str | os.PathLike, reading: ImageReading = ImageReading(), draft_size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode ``path`` into an 8-bit RGB image, or raise :class:`ImageLoadError`.

    ``draft_size`` (width, height): with ``reading.jpeg_draft``, a JPEG may be decoded at a reduced scale that
    keeps it at least this large. The decoded pixels are used as they are: no copy unless a conversion,
    a rotation or an animation needs one.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"image not found: {path}")
    if path.is_dir():
        raise ImageLoadError(f"expected an image file but {path} is a folder")
    try:
        image = Image.open(path)
        try:
            _check_size(path, image.size, reading)
            if reading.jpeg_draft and draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.load()  # the first frame of an animation; closes the file of a single-frame image
            if getattr(image, "fp", None) is not None:  # an animation keeps its file open: detach the first frame
                frame = image.copy()
                image.close()
                image = frame
        except BaseException:
            image.close()
            raise
        if reading.exif_orientation:
            ImageOps.exif_transpose(image, in_place=True)
        return to_rgb(image)
    except UnidentifiedImageError:
        raise ImageLoadError(f"not an image Pillow can read: {path}") from None
    except (OSError, SyntaxError) as exc:
        raise ImageLoadError(f"cannot decode {path}: {exc} (the file is truncated or corrupt)") from None
    except ValueError as exc:
        raise ImageLoadError(f"cannot use {path}: {exc}") from None


def _check_size(path: Path, size: tuple[int, int], reading: ImageReading) -> None:
    width, height = size
    megapixels = width * height / 1e6
    if reading.max_megapixels is None or megapixels <= reading.max_megapixels:
        return
    if reading.downscaled_to and megapixels <= DOWNSCALE_FACTOR * reading.max_megapixels:
        return  # decoded in full once, then downscaled; beyond this even one decode is a decompression bomb
    if reading.downscaled_to:
        raise ImageLoadError(
            f"{path} is {width}x{height} ({megapixels:.0f} MP): even downscaled, it must be decoded in full first, and "
            f"images above {DOWNSCALE_FACTOR:g} x the {reading.max_megapixels:g} MP limit are refused (a "
            "decompression bomb looks like this). Raise `preprocessing: {max_megapixels: ...}` if it is genuine."
        )
    raise ImageLoadError(
        f"{path} is {width}x{height} ({megapixels:.0f} MP), above the {reading.max_megapixels:g} MP limit that keeps "
        "full-resolution models within memory. Downscale it with the suite's `preprocessing: {max_side: 4096}` "
        "(or `--max-side` with `iqabench score`), or raise `preprocessing: {max_megapixels: ...}`."
    )
