"""An example third-party iqabench plugin: sharpness as the variance of the Laplacian.

A classic focus measure (Pech-Pacheco et al., 2000): blur removes high
frequencies, so the Laplacian of a blurred image varies less. It is a crude
quality score, but a real one, and small enough to read in a minute. It needs
numpy only, so registering it (``iqabench list``) loads nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from iqabench.api import Model, ModelTraits, Score, hookimpl


def grey(image: Image.Image) -> np.ndarray:
    """Luma in [0, 255] as float64 (runs in the decode workers)."""
    return np.asarray(image.convert("L"), dtype=np.float64)


def laplacian(array: np.ndarray) -> np.ndarray:
    """The 4-neighbour Laplacian of the interior pixels."""
    return (array[:-2, 1:-1] + array[2:, 1:-1] + array[1:-1, :-2] + array[1:-1, 2:]
            - 4.0 * array[1:-1, 1:-1])


class LaplacianSharpness(Model):
    """Sharpness: log10 of the variance of the Laplacian of the grey image (higher is sharper)."""

    name = "sharpness"
    score_range = (0.0, 5.0)
    traits = ModelTraits(preprocessing="full-resolution", score_in_workers=True)

    def __init__(self, *, min_side: int = 8, device: str = "cpu", dtype: str = "float32") -> None:
        super().__init__(device=device, dtype=dtype)
        self.min_side = min_side  # stored under its own name: results record it (Model.config)

    def preprocessor(self):
        return grey

    def score_batch(self, items: Sequence[np.ndarray]) -> list[Score]:
        scores = []
        for array in items:
            if min(array.shape) < self.min_side:
                scores.append(Score.failure(f"image smaller than {self.min_side} px on a side"))
                continue
            variance = float(laplacian(array).var())
            scores.append(Score.ok(np.log10(1.0 + variance)))
        return scores


@hookimpl
def iqabench_models():
    return [LaplacianSharpness]
