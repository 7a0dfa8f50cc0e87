"""Export a generative model's reasoning texts for images, resumably.

Each (image, seed) pair becomes one line of a texts file
(:mod:`iqabench.texts`). Seeds make sampled reasoning reproducible and
diverse: before each batch the torch RNG is seeded from the seed and the
batch's first image, so a resumed export writes the same texts it would have
written without the interruption (given the same batch size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from iqabench.errors import IQABenchError
from iqabench.progress import bar as progress_bar
from iqabench.model import Model
from iqabench.scoring import score_files
from iqabench.texts import ReasoningText, TextsWriter


@dataclass(frozen=True)
class ImageToDescribe:
    #: the id written to the file: path relative to the dataset root, or the path as given
    image: str
    path: Path
    gt: float | None = None


@dataclass
class DescribeSummary:
    written: int = 0
    skipped: int = 0
    failed: int = 0


def describe(
    model: Model,
    images: Sequence[ImageToDescribe],
    seeds: Sequence[int],
    out: str | Path,
    *,
    dataset: str | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    progress: bool = True,
) -> DescribeSummary:
    """Write one reasoning text per (image, seed) to ``out``, skipping pairs already there."""
    if not model.generative:
        raise IQABenchError(
            f"model {model.name!r} writes no text, so it cannot describe images; use a reasoning model such as "
            "q-insight (`iqabench list models` marks them)."
        )
    summary = DescribeSummary()
    with TextsWriter(out) as writer:
        bar = progress_bar(total=len(images) * len(seeds), desc=f"describe {model.name}", unit="text",
                           enabled=progress)
        for seed in seeds:
            todo = [im for im in images if (im.image, seed) not in writer.done]
            summary.skipped += len(images) - len(todo)
            bar.update(len(images) - len(todo))

            def seed_batch(start: int, seed: int = seed) -> None:
                torch.manual_seed(seed * 1_000_003 + start)

            for batch in score_files(model, [im.path for im in todo], batch_size=batch_size, num_workers=num_workers,
                                     before_batch=seed_batch):
                rows = []
                for index, score in batch:
                    image = todo[index]
                    rows.append(ReasoningText(image=image.image, seed=seed, text=score.text or "", score=score.value,
                                              gt=image.gt, dataset=dataset, model=model.name, error=score.error))
                    summary.failed += score.failed
                writer.write(rows)
                summary.written += len(rows)
                bar.update(len(batch))
        bar.close()
    return summary
