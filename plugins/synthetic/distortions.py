"""The distortions of the synthetic dataset: what each does, and at which five strengths.

Each distortion maps an 8-bit RGB array (H, W, 3) to a new one, given the
parameter of one severity level and a seeded random generator (used only by
the noises and the motion-blur direction). Levels 1..5 are designed so that
the damage grows monotonically; the parameters are in :data:`DISTORTIONS` so
the documentation, the manifest and the describer all read the same table.

Everything is plain NumPy/SciPy/Pillow, so the same inputs give the same bytes
on every run with the same library versions.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, features
from scipy import ndimage, signal

Array = np.ndarray


def _to_uint8(values: Array) -> Array:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _luma(image: Array) -> Array:
    """BT.601 luma, the grey a colour-less version of the image would have."""
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def gaussian_blur(image: Array, sigma: float, rng: np.random.Generator) -> Array:
    blurred = ndimage.gaussian_filter(image.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect")
    return _to_uint8(blurred)


def motion_kernel(length: int, angle: float) -> Array:
    """A normalised line of ``length`` pixels at ``angle`` radians, drawn with bilinear weights."""
    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size))
    centre = (size - 1) / 2
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        y, x = centre + t * np.sin(angle), centre + t * np.cos(angle)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        dy, dx = y - y0, x - x0
        for yy, xx, weight in (
            (y0, x0, (1 - dy) * (1 - dx)),
            (y0, x0 + 1, (1 - dy) * dx),
            (y0 + 1, x0, dy * (1 - dx)),
            (y0 + 1, x0 + 1, dy * dx),
        ):
            if 0 <= yy < size and 0 <= xx < size:
                kernel[yy, xx] += weight
    return kernel / kernel.sum()


def motion_blur(image: Array, length: int, rng: np.random.Generator) -> Array:
    """Linear camera shake of ``length`` pixels in a direction drawn from ``rng``."""
    kernel = motion_kernel(int(length), angle=float(rng.uniform(0.0, np.pi)))
    pad = kernel.shape[0] // 2
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    channels = [signal.fftconvolve(padded[..., c], kernel, mode="valid") for c in range(3)]
    return _to_uint8(np.stack(channels, axis=-1))


def gaussian_noise(image: Array, sigma: float, rng: np.random.Generator) -> Array:
    """Additive white Gaussian noise, independent per channel, ``sigma`` in 8-bit grey levels."""
    return _to_uint8(image.astype(np.float64) + rng.normal(0.0, sigma, size=image.shape))


def impulse_noise(image: Array, fraction: float, rng: np.random.Generator) -> Array:
    """Salt-and-pepper noise: ``fraction`` of the pixels set to black or white (all channels)."""
    out = image.copy()
    hit = rng.random(image.shape[:2]) < fraction
    salt = rng.random(image.shape[:2]) < 0.5
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


def _round_trip(image: Array, fmt: str, **options: object) -> Array:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def jpeg(image: Array, quality: int, rng: np.random.Generator) -> Array:
    """Baseline JPEG (libjpeg via Pillow, 4:2:0 chroma) at ``quality``, decoded back."""
    return _round_trip(image, "JPEG", quality=int(quality))


def jpeg2000(image: Array, ratio: float, rng: np.random.Generator) -> Array:
    """JPEG 2000 (OpenJPEG via Pillow, irreversible 9/7 wavelet) at a ``ratio``:1 compression rate."""
    return _round_trip(image, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True)


def contrast(image: Array, factor: float, rng: np.random.Generator) -> Array:
    """Pull every pixel towards the image's mean luma: ``factor`` 1 keeps it, 0 gives flat grey."""
    mean = _luma(image.astype(np.float64)).mean()
    return _to_uint8(mean + factor * (image.astype(np.float64) - mean))


def brightness(image: Array, factor: float, rng: np.random.Generator) -> Array:
    """Darkening: intensities scaled by ``factor`` (< 1), as an under-exposed shot."""
    return _to_uint8(image.astype(np.float64) * factor)


def saturation(image: Array, factor: float, rng: np.random.Generator) -> Array:
    """Colour loss: chroma scaled by ``factor`` around the luma (0 gives a grey image)."""
    values = image.astype(np.float64)
    grey = _luma(values)[..., None]
    return _to_uint8(grey + factor * (values - grey))


def pixelation(image: Array, block: int, rng: np.random.Generator) -> Array:
    """Box-average down by ``block`` then nearest-neighbour up: visible square blocks."""
    height, width = image.shape[:2]
    block = int(block)
    small = Image.fromarray(image).resize((max(1, width // block), max(1, height // block)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.NEAREST)).copy()


def quantisation(image: Array, steps: int, rng: np.random.Generator) -> Array:
    """Uniform quantisation of each channel to ``steps`` grey levels (banding, posterisation)."""
    scale = 255.0 / (int(steps) - 1)
    return _to_uint8(np.round(image.astype(np.float64) / scale) * scale)


@dataclass(frozen=True)
class Distortion:
    """One distortion type and the parameter of each of its five severity levels."""

    name: str
    #: what the parameter is, for the manifest and docs
    parameter: str
    #: parameter of levels 1..5, mildest first
    levels: tuple[float, ...]
    apply: Callable[[Array, float, np.random.Generator], Array]
    #: a colour-only distortion does nothing to a grey image, so grey references skip it
    needs_colour: bool = False


_ALL = (
    Distortion("gaussian_blur", "sigma (px)", (0.8, 1.5, 2.5, 4.0, 6.0), gaussian_blur),
    Distortion("motion_blur", "length (px)", (5, 9, 15, 21, 31), motion_blur),
    Distortion("gaussian_noise", "sigma (8-bit levels)", (5, 10, 18, 28, 40), gaussian_noise),
    Distortion("impulse_noise", "fraction of pixels", (0.01, 0.03, 0.06, 0.12, 0.2), impulse_noise),
    Distortion("jpeg", "quality", (35, 20, 10, 5, 2), jpeg),
    Distortion("jpeg2000", "compression ratio", (24, 48, 96, 192, 384), jpeg2000),
    Distortion("contrast", "contrast factor", (0.7, 0.5, 0.35, 0.22, 0.12), contrast),
    Distortion("brightness", "intensity factor", (0.75, 0.58, 0.43, 0.3, 0.2), brightness),
    Distortion("saturation", "chroma factor", (0.6, 0.4, 0.22, 0.1, 0.0), saturation, needs_colour=True),
    Distortion("pixelation", "block size (px)", (2, 3, 4, 6, 8), pixelation),
    Distortion("quantisation", "levels per channel", (20, 12, 8, 5, 3), quantisation),
)

#: JPEG 2000 needs Pillow built with OpenJPEG; without it that type is left out (10 types remain)
JPEG2000_AVAILABLE = bool(features.check("jpg_2000"))

#: the distortion types this installation can generate, by name
DISTORTIONS: dict[str, Distortion] = {d.name: d for d in _ALL if d.name != "jpeg2000" or JPEG2000_AVAILABLE}
