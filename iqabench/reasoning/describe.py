"""Export a generative model's reasoning texts for images, resumably, in one process or several.

Each (image, seed) pair becomes one line of a texts file
(:mod:`iqabench.reasoning.texts`). Seeds make sampled reasoning reproducible and
diverse: before each batch the torch RNG is seeded from the seed and the
place of the batch's first image in the image list, so a resumed export
writes the same texts it would have written without the interruption (given
the same batch size).

Under ``accelerate launch -m iqabench describe`` (``group`` given) the
batches are shared out among the processes as whole batches of the
single-process export, so every text is drawn with the same seed and in the
same batch as one process would draw it. Each process appends to a part file
of its own (``OUT.shard-<i>-of-<n>``); the main process then appends the parts
to ``OUT`` in the single-process order and removes them. Parts left by a
killed launch are folded in when the next one starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from iqabench.contracts.model import Model
from iqabench.errors import IQABenchError
from iqabench.progress import bar as progress_bar
from iqabench.reasoning.texts import ReasoningText, TextsWriter, read_texts
from iqabench.run.distributed import Processes, batches, share
from iqabench.run.layout import shard_name
from iqabench.scoring.engine import batch_seed, score_files
from iqabench.scoring.loader import Resize
from iqabench.scoring.scorer import Scorer, plugin_model


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
    model: Model | Scorer,
    images: Sequence[ImageToDescribe],
    seeds: Sequence[int],
    out: str | Path,
    *,
    dataset: str | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    progress: bool = True,
    group: Processes | None = None,
    resize: Resize | None = None,
) -> DescribeSummary:
    """Write one reasoning text per (image, seed) to ``out``, skipping pairs already there.

    ``group``: the processes of a launch that share the work (each calls this with the same arguments);
    without it this process does all of it. ``resize``: applied to every image before the model's preprocessing.
    """
    model = plugin_model(model)
    if not model.traits.generative:
        raise IQABenchError(
            f"model {model.name!r} writes no text, so it cannot describe images; use a reasoning model such as "
            "q-insight (`iqabench list models` marks them)."
        )
    out = Path(out)
    index, count = (group.index, group.count) if group is not None else (0, 1)
    if count > 1:
        if group.is_main:
            _fold_parts(out, images, seeds)
        group.barrier()
    done = {text.key for text in read_texts(out)} if out.exists() else set()
    summary = DescribeSummary()
    part = out if count == 1 else out.with_name(f"{out.name}.{shard_name(index, count)}")
    place = {image.image: i for i, image in enumerate(images)}
    with TextsWriter(part) as writer:
        bar = progress_bar(total=len(images) * len(seeds), desc=f"describe {model.name}", unit="text",
                           enabled=progress)
        for seed in seeds:
            todo = [im for im in images if (im.image, seed) not in done]
            summary.skipped += len(images) - len(todo)
            bar.update(len(images) - len(todo))
            positions = [i for span in share(batches(len(todo), batch_size), index, count) for i in span]

            def seed_batch(start: int, seed: int = seed, positions: list[int] = positions,
                           todo: list[ImageToDescribe] = todo) -> None:
                torch.manual_seed(batch_seed(seed, place[todo[positions[start]].image]))

            for batch in score_files(model, [todo[i].path for i in positions], batch_size=batch_size,
                                     num_workers=num_workers, resize=resize, before_batch=seed_batch):
                rows = []
                for position, score in batch:
                    image = todo[positions[position]]
                    rows.append(ReasoningText(image=image.image, seed=seed, text=score.text or "", score=score.value,
                                              gt=image.gt, dataset=dataset, model=model.name, error=score.error))
                    summary.failed += score.failed
                writer.write(rows)
                summary.written += len(rows)
                bar.update(len(batch))
        bar.close()
    if count == 1:
        return summary
    summaries = group.gather(summary)
    if group.is_main:
        _fold_parts(out, images, seeds)
    return DescribeSummary(written=sum(s.written for s in summaries), skipped=summaries[0].skipped,
                           failed=sum(s.failed for s in summaries))


def _fold_parts(out: Path, images: Sequence[ImageToDescribe], seeds: Sequence[int]) -> None:
    """Append the processes' part files to ``out`` in the order one process writes (seed, then image); remove them.

    Lines already in ``out`` are not written twice, so folding again after an interruption is harmless.
    """
    parts = sorted(out.parent.glob(f"{out.name}.shard-*-of-*")) if out.parent.is_dir() else []
    if not parts:
        return
    order = {(im.image, seed): (s, i) for s, seed in enumerate(seeds) for i, im in enumerate(images)}
    texts = {text.key: text for part in parts for text in read_texts(part)}
    with TextsWriter(out) as writer:
        writer.write(sorted((t for key, t in texts.items() if key not in writer.done),
                            key=lambda t: order.get(t.key, (len(seeds), len(images)))))
    for part in parts:
        part.unlink()
