"""Decoding, preparing and (where a model allows it) scoring images in worker processes.

Every batch is built whole by one worker (:class:`Batch`): each file is decoded
(:func:`iqabench.scoring.images.load_image`), resized where the suite says so, passed
through the model's preprocessor, and the batch's prepared inputs are joined by
the model's collator (RALI stacks uint8 pixels into one tensor, which the
loader pins so the copy to the GPU is asynchronous). A model that declares
``traits.score_in_workers`` is scored there too, so a CPU model uses every core and
the main process only writes results. Batches come back in input order, so
results do not depend on the number of workers. An image that cannot be read
is recorded with its reason instead of stopping the run.

With ``num_workers=0`` everything runs in the calling process. Workers are
torch's DataLoader when torch is loaded (tensors travel through shared memory;
its pinning thread overlaps the copies to the GPU), else a plain process pool,
so a NumPy model's suite never imports torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from iqabench.scoring.batch_scoring import score_collated
from iqabench.scoring.images import ImageReading, load_image


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


@dataclass
class Batch:
    """One batch as a worker hands it over.

    ``start`` is the position of its first image among the paths, ``size`` its
    number of images; ``errors`` maps the offset of each unreadable image to the
    reason. The readable images (``ready``, offsets in order) are in ``inputs``,
    joined by the model's collator, or already scored in ``scores`` when the
    model scores in the workers.
    """

    start: int
    size: int
    errors: dict[int, str] = field(default_factory=dict)
    inputs: Any = None
    scores: list[Any] | None = None

    @property
    def ready(self) -> list[int]:
        return [offset for offset in range(self.size) if offset not in self.errors]

    def pin_memory(self) -> Batch:
        """Page-lock a tensor batch (the DataLoader calls this in its pinning thread when the device is CUDA)."""
        if hasattr(self.inputs, "pin_memory"):
            self.inputs = self.inputs.pin_memory()
        return self


@dataclass
class _Reader:
    """File -> prepared input, in a worker: decode, the suite's resize, the model's preprocessor."""

    prepare: Callable[[Image.Image], Any]
    resize: Resize | None
    reading: ImageReading
    draft_size: tuple[int, int] | None = None

    def __call__(self, path: os.PathLike | str) -> Any:
        image = load_image(path, self.reading, draft_size=self.draft_size)
        if self.resize is not None and self.resize.active:
            image = self.resize(image)
        return self.prepare(image)


@dataclass
class _ItemBatches:
    """Batches as lists of :class:`LoadedItem` (the trainers' interface)."""

    paths: Sequence[os.PathLike | str]
    batch_size: int
    read: _Reader

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, batch: int) -> list[LoadedItem]:
        start = batch * self.batch_size
        items = []
        for index in range(start, min(start + self.batch_size, len(self.paths))):
            try:
                items.append(LoadedItem(index, self.read(self.paths[index]), None))
            except Exception as exc:  # reported per image, never fatal for the run
                items.append(LoadedItem(index, None, f"{type(exc).__name__}: {exc}"))
        return items


@dataclass
class _ModelBatches:
    """Batches as :class:`Batch`: prepared, collated by the model, and scored when the model allows it."""

    paths: Sequence[os.PathLike | str]
    batch_size: int
    read: _Reader
    collate: Callable[[list[Any]], Any]
    #: the model itself when it scores in the workers
    scorer: Any = None

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, batch: int) -> Batch:
        start = batch * self.batch_size
        size = min(self.batch_size, len(self.paths) - start)
        result, prepared = Batch(start, size), []
        for offset in range(size):
            try:
                prepared.append(self.read(self.paths[start + offset]))
            except Exception as exc:  # reported per image, never fatal for the run
                result.errors[offset] = f"{type(exc).__name__}: {exc}"
        if prepared:
            result.inputs = self.collate(prepared)
            if self.scorer is not None:
                result.scores, result.inputs = score_collated(self.scorer, result.inputs, len(prepared)), None
        return result


def _iterate(batches: _ItemBatches | _ModelBatches, num_workers: int, pin_memory: bool) -> Iterator[Any]:
    """The batches in order: in this process; in torch's DataLoader when torch is loaded (a torch model: its
    tensors travel through shared memory, and its pinning thread overlaps the copies to CUDA); otherwise in a
    plain process pool, so a NumPy model's suite (NIQE, BRISQUE) never imports torch."""
    if num_workers <= 0:
        for batch in range(len(batches)):
            yield batches[batch]
    elif "torch" in sys.modules:
        yield from _data_loader(batches, num_workers, pin_memory)
    else:
        yield from _process_pool(batches, num_workers)


def _data_loader(batches: _ItemBatches | _ModelBatches, num_workers: int, pin_memory: bool) -> Iterator[Any]:
    import torch

    yield from torch.utils.data.DataLoader(
        batches,  # a map-style dataset of whole batches, each built by one worker
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=PREFETCH,
        worker_init_fn=_keep_freed_memory,
    )


#: batches in flight per worker
PREFETCH = 4
_WORKER_BATCHES: _ItemBatches | _ModelBatches | None = None


def _start_worker(batches: _ItemBatches | _ModelBatches) -> None:
    global _WORKER_BATCHES
    _WORKER_BATCHES = batches
    _keep_freed_memory(0)


def _build(batch: int) -> Any:
    return _WORKER_BATCHES[batch]


def _process_pool(batches: _ItemBatches | _ModelBatches, num_workers: int) -> Iterator[Any]:
    """Whole batches built by ``num_workers`` processes, at most ``PREFETCH`` per worker ahead of the consumer.

    Workers fork where the platform allows (they inherit the model; elsewhere it is pickled). A worker that dies
    (killed for memory, a crash in native code) raises ``BrokenProcessPool`` here instead of hanging.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    executor = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_start_worker, initargs=(batches,))
    pending: deque = deque()
    submitted = 0
    try:
        while submitted < len(batches) or pending:
            while submitted < len(batches) and len(pending) < PREFETCH * num_workers:
                pending.append(executor.submit(_build, submitted))
                submitted += 1
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


#: glibc mallopt parameters: keep freed memory for reuse instead of returning it to the OS
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 256 << 20


def _keep_freed_memory(worker: int) -> None:
    """In a decode worker, let glibc reuse freed image buffers instead of handing them back to the OS.

    By default glibc returns large freed blocks (decoded images, gray conversions, model temporaries) to the
    OS and faults them back in, page by page, for the next image. Blocks up to 256 MB are served from the
    heap and the heap is not trimmed, so a worker's memory stays at its high-water mark and the next image
    of the same size reuses it. No effect where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES)
    except OSError:
        pass


def iterate_batches(
    paths: Sequence[os.PathLike | str],
    prepare: Callable[[Image.Image], Any],
    *,
    batch_size: int,
    num_workers: int = 0,
    resize: Resize | None = None,
    reading: ImageReading | None = None,
    pin_memory: bool = False,
    draft_size: tuple[int, int] | None = None,
) -> Iterator[list[LoadedItem]]:
    """Yield batches of decoded, prepared images in input order, one :class:`LoadedItem` per image.

    ``draft_size``: where ``reading.jpeg_draft`` allows it, decode JPEGs at a reduced scale down to it.
    """
    read = _Reader(prepare, resize, reading or _default_reading(resize), draft_size)
    yield from _iterate(_ItemBatches(paths, max(1, batch_size), read), num_workers, pin_memory)


def model_batches(
    model: Any,
    paths: Sequence[os.PathLike | str],
    *,
    batch_size: int,
    num_workers: int = 0,
    resize: Resize | None = None,
    reading: ImageReading | None = None,
) -> Iterator[Batch]:
    """Yield the :class:`Batch` es of ``paths`` for ``model`` in input order.

    In the workers: decoding (at a reduced JPEG scale down to ``model.decode_size()`` where the reading
    allows ``jpeg_draft``), the model's preprocessor and collator, and the model's scores when it declares
    ``traits.score_in_workers`` and there are workers. Tensor batches are pinned when the model is on CUDA.
    """
    reading = reading or _default_reading(resize)
    draft_size = model.decode_size() if reading.jpeg_draft else None
    read = _Reader(model.preprocessor(), resize, reading, draft_size)
    scorer = model if model.traits.score_in_workers and num_workers > 0 else None
    batches = _ModelBatches(paths, max(1, batch_size), read, model.collator(), scorer)
    yield from _iterate(batches, num_workers, pin_memory=str(model.device).startswith("cuda"))


def _default_reading(resize: Resize | None) -> ImageReading:
    return ImageReading(downscaled_to=resize.max_side if resize is not None else None)
