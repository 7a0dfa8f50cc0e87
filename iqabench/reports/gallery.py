"""Failure galleries: the images a model gets most wrong on a test set, as thumbnails with their numbers.

"Most wrong" is the largest rank error after the fit: the distance between an image's rank among the model's
(sign-corrected) predictions and its rank by MOS, as a fraction of the test set. The 4-parameter logistic is
monotone, so ranks are the same before and after it; the gallery also shows each prediction mapped through the
logistic onto the MOS scale (when it fits), so a reader compares like with like. Ties break by the test set's
order, so the gallery is the same on every redraw.

Thumbnails are made at render time from the images on disk (the dataset's root as the run recorded it), at most
:data:`THUMBNAIL` pixels on a side: nothing of a dataset enters a run folder beyond that. An image that is not on
disk any more gets a placeholder, never a failure.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import stats

from iqabench.reports import metrics
from iqabench.reports.schema import Results, TestSetRecord
from iqabench.run.predictions import Prediction

#: images per (model, test set) in a gallery
GALLERY_SIZE = 8
#: longest side of a thumbnail, in pixels
THUMBNAIL = 128
#: JPEG quality of the embedded thumbnails (small files; the page is self-contained)
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Miss:
    """One image of a gallery."""

    #: its row in the test set
    row: int
    image: str
    mos: float
    prediction: float
    #: the prediction mapped through the fitted logistic onto the MOS scale; None when the fit fails
    fitted: float | None
    #: ranks (1 = best) among the model's predictions and by MOS, and the test set's scored images
    predicted_rank: int
    mos_rank: int
    scored: int
    #: the first line of what the model wrote (a reasoning model's answer), if anything
    reasoning: str | None

    @property
    def rank_error(self) -> float:
        return abs(self.predicted_rank - self.mos_rank) / max(1, self.scored - 1)


def largest_rank_errors(rows: Sequence[Prediction], *, sign: float, count: int = GALLERY_SIZE) -> list[Miss]:
    """The ``count`` scored images with the largest rank error, largest first (ties in test set order); images
    ranked exactly right are never shown."""
    scored = [(i, r) for i, r in enumerate(rows) if r.prediction is not None]
    if len(scored) < 2:
        return []
    pred = np.array([sign * r.prediction for _, r in scored])
    mos = np.array([r.mos for _, r in scored])
    # rank 1 = best: rank the negated values, ties at their mean rank (rounded for display)
    predicted = stats.rankdata(-pred)
    by_mos = stats.rankdata(-mos)
    fitted = _fitted(pred, mos)
    wrong = [k for k in range(len(scored)) if predicted[k] != by_mos[k]]  # a model may rank some images right
    order = sorted(wrong, key=lambda k: (-abs(predicted[k] - by_mos[k]), k))[:count]
    return [
        Miss(row=scored[k][0], image=scored[k][1].image, mos=scored[k][1].mos, prediction=scored[k][1].prediction,
             fitted=None if fitted is None else float(fitted[k]), predicted_rank=int(round(predicted[k])),
             mos_rank=int(round(by_mos[k])), scored=len(scored), reasoning=first_line(scored[k][1].text))
        for k in order
    ]


def _fitted(pred: np.ndarray, mos: np.ndarray) -> np.ndarray | None:
    try:
        params, direction = metrics.logistic4_fit(pred, mos)
    except (metrics.FitError, ValueError, TypeError):  # TypeError: fewer images than the logistic's parameters
        return None
    return metrics.logistic4(direction * pred, *params)


def first_line(text: str | None, limit: int = 160) -> str | None:
    """The first non-empty line of ``text``, cut to ``limit`` characters."""
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return None


def image_root(test: TestSetRecord) -> Path | None:
    """Where the test set's images are on this machine, from the root the run recorded (``~`` expanded)."""
    root = test.dataset_provenance.root if test.dataset_provenance else None
    return None if not root else Path(os.path.expanduser(root))


def image_path(test: TestSetRecord, image: str) -> Path | None:
    root = image_root(test)
    if root is None:
        return None
    path = root / image
    return path if path.is_file() else None


def thumbnail(path: Path | None, size: int = THUMBNAIL) -> Image.Image | None:
    """The image at ``path`` reduced to at most ``size`` pixels on a side, RGB; None when it cannot be read."""
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            small = image.convert("RGB")
            small.thumbnail((size, size), Image.Resampling.BICUBIC)
            return small
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def thumbnail_data_uri(path: Path | None, size: int = THUMBNAIL) -> str | None:
    """A thumbnail as a ``data:image/jpeg;base64`` URI, for a page that needs no other file."""
    small = thumbnail(path, size)
    if small is None:
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def galleries(results: Results,
              predictions: dict[str, dict[str, list[Prediction]]]) -> dict[tuple[str, str], list[Miss]]:
    """The gallery of every (model, test set) pair that has predictions, keyed by (model key, test key)."""
    out = {}
    for model in results.models:
        for test in results.test_sets:
            pair = results.pair(model.key, test.key)
            rows = predictions.get(model.key, {}).get(test.key)
            if pair is None or pair.status != "ok" or not rows:
                continue
            misses = largest_rank_errors(rows, sign=pair.sign)
            if misses:
                out[(model.key, test.key)] = misses
    return out
