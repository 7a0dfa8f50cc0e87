"""The pristine references: photographs bundled inside the scikit-image wheel.

Only loaders whose files ship in the wheel are used (they work offline; the
others fetch with pooch). Each photograph is scaled to cover the common size
and cropped, so every image of the dataset has the same size and NIQE's two
96-pixel scales fit. The grey photographs are replicated to RGB.

The right view of ``stereo_motorcycle`` is left out on purpose: it is almost
the same picture as the left one, and the two would leak across a
reference-disjoint split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage import data


@dataclass(frozen=True)
class Reference:
    name: str
    load: Callable[[], np.ndarray]
    colour: bool
    #: where the crop sits along the axis that is cut, 0 = top/left, 0.5 = centre
    anchor: float = 0.5
    #: where the photograph comes from and its licence (scikit-image's docstrings)
    source: str = ""


REFERENCES: dict[str, Reference] = {
    ref.name: ref
    for ref in (
        Reference("astronaut", data.astronaut, True, 0.0, "NASA portrait of Eileen Collins, public domain"),
        Reference("coffee", data.coffee, True, 0.5, "Rachel Michetti, CC0"),
        Reference("chelsea", data.chelsea, True, 0.5, "Chelsea the cat, Stefan van der Walt, CC0"),
        Reference("rocket", data.rocket, True, 0.5, "SpaceX launch, public domain (JPEG source)"),
        Reference("motorcycle", lambda: data.stereo_motorcycle()[0], True, 0.5, "Middlebury 2014 stereo, left view"),
        Reference("immunohistochemistry", data.immunohistochemistry, True, 0.5, "IHC staining, no known restrictions"),
        Reference("camera", data.camera, False, 0.15, "cameraman, CC0"),
        Reference("coins", data.coins, False, 0.5, "Greek coins, Walters Art Museum, no known restrictions"),
        Reference("moon", data.moon, False, 0.5, "surface of the moon"),
    )
}


def load_reference(name: str, size: tuple[int, int]) -> np.ndarray:
    """The reference ``name`` as an 8-bit RGB array of ``size`` = (width, height)."""
    reference = REFERENCES[name]
    pixels = np.asarray(reference.load())
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    image = Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), mode="RGB")
    return cover_and_crop(image, size, reference.anchor)


def cover_and_crop(image: Image.Image, size: tuple[int, int], anchor: float = 0.5) -> np.ndarray:
    """Scale (Lanczos) so ``image`` covers ``size``, then crop the excess at ``anchor``."""
    width, height = size
    scale = max(width / image.width, height / image.height)
    scaled_size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    scaled = image.resize(scaled_size, Image.LANCZOS)
    left = round((scaled.width - width) * anchor)
    top = round((scaled.height - height) * anchor)
    return np.asarray(scaled.crop((left, top, left + width, top + height))).copy()
