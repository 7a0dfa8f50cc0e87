"""Scoring one batch of prepared inputs so that one bad image fails alone.

A model scores a batch joined by its collator; if the batch raises, its images
are scored again one by one, and an image that still raises gets a
:meth:`~iqabench.contracts.model.Score.failure` with the reason. Used by the
scoring loop (:mod:`iqabench.scoring.engine`), the decode workers of models
that score there (:mod:`iqabench.scoring.loader`) and the Python API
(:mod:`iqabench.scoring.inputs`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from iqabench.contracts.model import Model, Score
from iqabench.errors import IQABenchError

log = logging.getLogger("iqabench.scoring.engine")


def score_safely(model: Model, items: Sequence[Any]) -> list[Score]:
    """Score prepared inputs (joined by the model's collator); if the batch raises, image by image."""
    if not items:
        return []
    return score_collated(model, model.collator()(list(items)), len(items))


def score_collated(model: Model, inputs: Any, count: int) -> list[Score]:
    """Score ``count`` collated inputs; if the batch raises, score its images one by one so one bad image
    fails alone (``list(inputs)`` gives them back, see :meth:`Model.collator`)."""
    try:
        scores = model.score_batch(inputs)
        if len(scores) != count:
            raise IQABenchError(f"model {model.name!r} returned {len(scores)} scores for {count} images")
        return scores
    except Exception as exc:
        if count == 1:
            return [Score.failure(f"{type(exc).__name__}: {exc}")]
        log.warning("%s: a batch failed (%s); scoring its images one by one", model.name, exc)
        collate = model.collator()
        return [score_collated(model, collate([item]), 1)[0] for item in list(inputs)]
