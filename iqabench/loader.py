"""Decoding images in worker processes so the model never waits for JPEG decode.

A torch ``DataLoader`` runs :func:`iqabench.images.load_image`, the suite's
resize override and the model's own preprocessor in ``num_workers`` processes
and yields batches in order. An image that cannot be read becomes a
:class:`LoadedItem` with an ``error`` instead of stopping the run: the runner
records it as unscored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from iqabench.images import ImageReading, load_image


@dataclass(frozen=True)
class Resize:
    """The suite-level resize override, applied before the model's own preprocessing.

    ``shorter_side`` scales so the shorter side has that many pixels (pyiqa's
    SPAQ convention, 448); ``max_side`` only shrinks images whose longer side
    exceeds it. Both keep the aspect ratio and use bicubic resampling.
    """

    shorter_side: int | None = None
    max_side: int | None = None

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        scale = 1.0
        if self.shorter_side:
            scale = self.shorter_side / min(width, height)
        if self.max_side and max(width, height) * scale > self.max_side:
            scale = self.max_side / max(width, height)
        if scale == 1.0:
            return image
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return image.resize(size, Image.BICUBIC)

    @property
    def active(self) -> bool:
        return bool(self.shorter_side or self.max_side)


@dataclass
class LoadedItem:
    index: int
    item: Any | None
    error: str | None


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[os.PathLike | str], prepare: Callable[[Image.Image], Any],
                 resize: Resize | None, reading: ImageReading):
        self.paths = list(paths)
        self.prepare = prepare
        self.resize = resize
        self.reading = reading

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> LoadedItem:
        try:
            image = load_image(self.paths[index], self.reading)
            if self.resize is not None and self.resize.active:
                image = self.resize(image)
            return LoadedItem(index, self.prepare(image), None)
        except Exception as exc:  # reported per image, never fatal for the run
            return LoadedItem(index, None, f"{type(exc).__name__}: {exc}")


def _as_list(batch: list[LoadedItem]) -> list[LoadedItem]:
    return batch


def iterate_batches(
    paths: Sequence[os.PathLike | str],
    prepare: Callable[[Image.Image], Any],
    *,
    batch_size: int,
    num_workers: int = 0,
    resize: Resize | None = None,
    reading: ImageReading | None = None,
    pin_memory: bool = False,
) -> Iterator[list[LoadedItem]]:
    """Yield batches of decoded, prepared images in input order."""
    if reading is None:
        reading = ImageReading(downscaled_to=resize.max_side if resize is not None else None)
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, prepare, resize, reading),
        batch_size=max(1, batch_size),
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=4 if num_workers > 0 else None,
    )
    yield from loader
