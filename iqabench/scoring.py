"""Scoring image files with a model: decode in workers, score in batches, one outcome per image.

The loop of every command that scores files (``run``, ``score``,
``describe``, the Python API): images are decoded and prepared in
:func:`iqabench.loader.iterate_batches` worker processes, scored batch by
batch, and every image gets a :class:`~iqabench.model.Score`: a value, or a
failure with its reason (an unreadable file, a batch that raised, a model
that refused the image). Nothing is dropped and nothing is made up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from iqabench.errors import IQABenchError
from iqabench.images import ImageReading
from iqabench.loader import Resize, iterate_batches
from iqabench.model import Model, Score

log = logging.getLogger("iqabench.scoring")


def score_safely(model: Model, items: list[Any]) -> list[Score]:
    """Score a batch; if the batch raises, score its images one by one so one bad image fails alone."""
    if not items:
        return []
    try:
        scores = model.score_batch(items)
        if len(scores) != len(items):
            raise IQABenchError(f"model {model.name!r} returned {len(scores)} scores for {len(items)} images")
        return scores
    except Exception as exc:
        if len(items) == 1:
            return [Score.failure(f"{type(exc).__name__}: {exc}")]
        log.warning("%s: a batch failed (%s); scoring its images one by one", model.name, exc)
        return [score_safely(model, [item])[0] for item in items]


def score_files(
    model: Model,
    paths: Sequence[str | os.PathLike],
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    resize: Resize | None = None,
    reading: ImageReading | None = None,
    before_batch: Callable[[int], None] | None = None,
) -> Iterator[list[tuple[int, Score]]]:
    """Yield, batch by batch in input order, ``(index into paths, Score)`` for every image.

    ``before_batch(start)`` runs before each batch is scored, with the index of
    its first image (``describe`` seeds sampling there, so a resumed export
    writes what an uninterrupted one would).
    """
    if batch_size < 1:
        raise IQABenchError(f"batch size must be a positive integer, got {batch_size}.")
    start = 0
    for batch in iterate_batches(
        paths,
        model.preprocessor(),
        batch_size=batch_size,
        num_workers=num_workers,
        resize=resize,
        reading=reading,
        pin_memory=str(model.device).startswith("cuda"),
    ):
        ready = [item for item in batch if item.error is None]
        if before_batch is not None:
            before_batch(start)
        scores = dict(zip((item.index for item in ready), score_safely(model, [item.item for item in ready])))
        outcomes = []
        for item in batch:
            if item.error is not None:
                log.warning("%s", item.error)
                outcomes.append((item.index, Score.failure(item.error)))
            else:
                outcomes.append((item.index, scores[item.index]))
        start += len(batch)
        yield outcomes
