"""Scoring image files with a model: decode in workers, score in batches, one outcome per image.

The loop of every command that scores files (``run``, ``score``,
``describe``, the Python API): images are decoded and prepared in
:func:`iqabench.scoring.loader.model_batches` worker processes (and scored there when
the model allows it), scored batch by batch (:mod:`iqabench.scoring.batch_scoring`), and every image gets a
:class:`~iqabench.contracts.model.Score`: a value, or a
failure with its reason (an unreadable file, a batch that raised, a model
that refused the image). Nothing is dropped and nothing is made up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence

from iqabench.contracts.model import Model, Score
from iqabench.errors import IQABenchError
from iqabench.scoring.batch_scoring import score_collated
from iqabench.scoring.images import ImageReading
from iqabench.scoring.loader import Resize, model_batches

log = logging.getLogger("iqabench.scoring.engine")


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

    ``before_batch(start)`` runs before each batch is scored in this process, with the index of its first
    image (``describe`` seeds sampling there, so a resumed export writes what an uninterrupted one would).
    A model that scores in the workers (``score_in_workers``) was scored before its batch arrives.
    """
    if batch_size < 1:
        raise IQABenchError(f"batch size must be a positive integer, got {batch_size}.")
    for batch in model_batches(model, paths, batch_size=batch_size, num_workers=num_workers, resize=resize,
                               reading=reading):
        scores = batch.scores
        if scores is None:
            if before_batch is not None:
                before_batch(batch.start)
            scores = score_collated(model, batch.inputs, len(batch.ready)) if batch.ready else []
        by_offset = dict(zip(batch.ready, scores, strict=True))
        outcomes = []
        for offset in range(batch.size):
            if offset in batch.errors:
                log.warning("%s", batch.errors[offset])
                outcomes.append((batch.start + offset, Score.failure(batch.errors[offset])))
            else:
                outcomes.append((batch.start + offset, by_offset[offset]))
        yield outcomes


def batch_seed(seed: int, first_image: int) -> int:
    """The torch seed of the batch that starts at ``first_image`` of a test set: the same whether a run was resumed
    or shared out over processes, so a model that samples gives the same scores (``run`` and ``describe``)."""
    return seed * 1_000_003 + first_image
