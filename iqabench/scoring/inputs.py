"""What users hold, scored: file paths, PIL images, numpy arrays and tensors, under one input contract.

The engine behind ``scorer(inputs)`` (:class:`iqabench.scoring.scorer.Scorer`)
and the reward adapters. Every form is checked by the same rules before any
model sees it, and every kind of input ends in one of the two scoring paths a
model has, so no score is computed in a way the CLI does not:

* file paths go through :func:`iqabench.scoring.engine.score_files`, the loop of
  ``iqabench score`` and ``iqabench run`` (decode in workers, the model's
  preprocessor, batches, one outcome per file);
* PIL images and uint8 arrays are converted to 8-bit RGB as files are
  (:func:`iqabench.scoring.images.to_rgb`) and go through the model's
  preprocessor and :func:`iqabench.scoring.batch_scoring.score_safely`;
* tensors and float arrays become ``[B, 3, H, W]`` float pixels in [0, 1]
  (:func:`iqabench.scoring.pixels.as_pixel_batch`: uint8 read as value / 255,
  grey replicated to RGB, NaN and values outside [0, 1] refused) and go through
  the model's tensor path (:meth:`~iqabench.contracts.model.Model.score_pixels`)
  when its traits say ``differentiable``, else they are rounded to 8-bit images.

The layout rule: numpy arrays are channels-last (``HxW``, ``HxWxC``,
``NxHxWxC``), as PIL, OpenCV and scikit-image give them; tensors are
channels-first (``[H, W]``, ``[C, H, W]``, ``[B, C, H, W]``), as torch and
torchvision give them; ``C`` is 1 (grey) or 3 (RGB), and 4 (RGBA, composited on
white as files are) for uint8 arrays. A form outside the contract is refused
with one line saying what was expected and how to convert.

An image that cannot be scored gets :meth:`Score.failure` with the reason;
it is never dropped or given a stand-in value.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from iqabench.contracts.model import Model, Score
from iqabench.errors import IQABenchError
from iqabench.scoring.batch_scoring import score_safely
from iqabench.scoring.images import to_rgb

if TYPE_CHECKING:
    import numpy as np
    import torch

    Inputs = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor | Sequence[Any]

log = logging.getLogger("iqabench.scoring.inputs")


def score_inputs(model: Model, inputs: Inputs, *, batch_size: int = 8, num_workers: int = 0) -> tuple[list[Score], str]:
    """One :class:`Score` per image of ``inputs``, in order, and the device a tensor of them belongs on."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise IQABenchError(f"batch size must be a positive integer, got {batch_size!r}.")
    kind, items = split_inputs(inputs)
    if kind == "paths":
        from iqabench.scoring.engine import score_files

        scores: list[Score] = []
        for batch in score_files(model, items, batch_size=batch_size, num_workers=num_workers):
            scores.extend(score for _, score in batch)
        return scores, "cpu"
    if kind == "pixels":
        if not items:  # an empty [0, 3, H, W] batch
            return [], str(getattr(inputs, "device", "cpu"))
        device = str(items[0].device)
        if model.traits.differentiable:
            return score_pixel_list(model, items, batch_size=batch_size), device
        from iqabench.scoring.pixels import to_pil_images

        items = [image for pixels in items for image in to_pil_images(pixels[None])]
        return score_images(model, items, batch_size=batch_size), device
    return score_images(model, items, batch_size=batch_size), "cpu"


def split_inputs(inputs: Inputs) -> tuple[str, list[Any]]:
    """``(kind, items)``, every item checked: ``paths``, ``images`` (PIL, RGB) or ``pixels`` (``[3, H, W]`` in
    [0, 1])."""
    kind = _kind(inputs)
    if kind == "tensor":
        from iqabench.scoring.pixels import as_pixel_batch

        return "pixels", list(as_pixel_batch(inputs))
    if kind == "array":
        batch = inputs.ndim == 4
        return _arrays(list(inputs) if batch else [inputs], batch_shape=inputs.shape if batch else None)
    if kind == "images":
        return "images", [_rgb(inputs, None)]
    if kind is not None:
        return kind, [inputs]
    if not isinstance(inputs, Sequence):
        raise IQABenchError(_unsupported(inputs))
    if not inputs:
        return "images", []
    kinds = {_kind(item) for item in inputs}
    if len(kinds) != 1 or None in kinds:
        names = sorted({type(item).__name__ for item in inputs})
        raise IQABenchError(
            f"a list of inputs holds one kind of image: file paths, PIL images, numpy arrays or tensors "
            f"(got {', '.join(names)})."
        )
    kind = kinds.pop()
    if kind == "tensor":
        return "pixels", [_one_tensor_image(item, index) for index, item in enumerate(inputs)]
    if kind == "array":
        return _arrays(list(inputs), batch_shape=None)
    if kind == "images":
        return "images", [_rgb(image, index) for index, image in enumerate(inputs)]
    return kind, list(inputs)


def _rgb(image: Image.Image, index: int | None) -> Image.Image:
    """A PIL image as 8-bit RGB, as files are read; an image that cannot be (NaN pixels, a float range other
    than [0, 1]) is refused like a tensor or an array."""
    try:
        return to_rgb(image)
    except ValueError as exc:
        where = "the PIL image" if index is None else f"PIL image {index} of the list"
        raise IQABenchError(f"{where} cannot be scored: {exc}.") from None


def _kind(value: Any) -> str | None:
    if isinstance(value, (str, os.PathLike)):
        return "paths"
    if isinstance(value, Image.Image):
        return "images"
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return "array"
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    if torch is not None and isinstance(value, torch.Tensor):
        return "tensor"
    return None


def _unsupported(value: Any) -> str:
    return (
        f"cannot score a {type(value).__name__}: pass image file paths, PIL images, numpy arrays (HxWx3) or "
        "tensors ([B, 3, H, W] in [0, 1])."
    )


def _one_tensor_image(tensor: torch.Tensor, index: int) -> torch.Tensor:
    """One ``[C, H, W]`` (or ``[H, W]``) tensor of a list, checked as a batch of one."""
    from iqabench.scoring.pixels import as_pixel_batch

    if tensor.dim() not in (2, 3):
        raise IQABenchError(
            f"item {index} of the list is a tensor of shape {list(tensor.shape)}; a list holds one image per tensor "
            "([3, H, W], [1, H, W] or [H, W]): pass a batch as one [B, 3, H, W] tensor, or list(batch)."
        )
    return as_pixel_batch(tensor)[0]


def _arrays(arrays: list[np.ndarray], *, batch_shape: tuple[int, ...] | None) -> tuple[str, list[Any]]:
    """Numpy images (channels-last): uint8 ones become PIL images (exact), float ones ``[3, H, W]`` pixels."""
    import numpy as np

    kinds = {array.dtype.kind for array in arrays}
    if not arrays:
        return "images", []
    if kinds == {"f"}:
        import torch

        from iqabench.scoring.pixels import as_pixel_batch

        pixels = []
        for array in arrays:
            _check_array_layout(array, batch_shape, float_array=True)
            chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            pixels.append(as_pixel_batch(torch.from_numpy(np.ascontiguousarray(chw)), what="float numpy image")[0])
        return "pixels", pixels
    if {str(array.dtype) for array in arrays} != {"uint8"}:
        raise IQABenchError(
            f"numpy images are uint8, or float in [0, 1]; got {', '.join(sorted({str(a.dtype) for a in arrays}))}. "
            "Convert them, e.g. (array / 65535).astype('float32') for 16-bit images."
        )
    images = []
    for array in arrays:
        _check_array_layout(array, batch_shape, float_array=False)
        images.append(to_rgb(Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)))
    return "images", images


def _check_array_layout(array: np.ndarray, batch_shape: tuple[int, ...] | None, *, float_array: bool) -> None:
    """Refuse a numpy image that is not ``HxW`` or ``HxWxC`` (C: 1, 3, or 4 for uint8), naming the conversion."""
    channels = (1, 3) if float_array else (1, 3, 4)
    batch = batch_shape is not None
    shape = batch_shape if batch else array.shape
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in channels):
        return
    expected = "NxHxWxC" if batch else "HxW or HxWxC"
    allowed = "1 or 3" if float_array else "1, 3 or 4"
    hint = ""
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3, 4):
        hint = f" It looks channels-first: {'batch.transpose(0, 2, 3, 1)' if batch else 'array.transpose(1, 2, 0)'}."
    elif array.ndim == 3 and float_array and array.shape[2] == 4:
        hint = " Drop or composite the alpha channel (array[..., :3]), or pass it as uint8."
    elif array.ndim not in (2, 3):
        hint = " A stack of batches or a video: reshape it to NxHxWxC."
    raise IQABenchError(
        f"numpy images are {expected} (channels-last, C = {allowed}); got shape {tuple(shape)}.{hint}"
    )


def score_images(model: Model, images: Sequence[Image.Image], *, batch_size: int) -> list[Score]:
    """PIL images through the model's preprocessor and ``score_batch``, ``batch_size`` at a time."""
    prepare = model.preprocessor()
    scores: list[Score | None] = [None] * len(images)
    ready: list[tuple[int, Any]] = []
    for index, image in enumerate(images):
        try:
            ready.append((index, prepare(to_rgb(image))))
        except Exception as exc:  # one image the preprocessor refuses fails alone
            scores[index] = Score.failure(f"{type(exc).__name__}: {exc}")
    for start in range(0, len(ready), batch_size):
        chunk = ready[start : start + batch_size]
        for (index, _), score in zip(chunk, score_safely(model, [item for _, item in chunk]), strict=True):
            scores[index] = score
    return scores  # type: ignore[return-value]


def score_pixel_list(model: Model, pixels: Sequence[torch.Tensor], *, batch_size: int) -> list[Score]:
    """``[3, H, W]`` tensors through the tensor path, same-sized ones batched together, without gradients."""
    import torch

    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(pixels):
        groups.setdefault(tuple(image.shape), []).append(index)
    scores: list[Score | None] = [None] * len(pixels)
    with torch.no_grad():
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.stack([pixels[i] for i in chunk]).to(model.device, non_blocking=True)
                for index, score in zip(chunk, _score_pixels_safely(model, batch), strict=True):
                    scores[index] = score
    return scores  # type: ignore[return-value]


def _score_pixels_safely(model: Model, batch: torch.Tensor) -> list[Score]:
    """The tensor path on a batch; if it raises, image by image, so one bad image fails alone."""
    try:
        values = model.score_pixels(batch)
        if values.shape != (batch.shape[0],):
            raise IQABenchError(f"model {model.name!r} returned scores of shape {list(values.shape)} for "
                                f"{batch.shape[0]} images")
    except Exception as exc:
        if batch.shape[0] == 1:
            return [Score.failure(f"{type(exc).__name__}: {exc}")]
        log.warning("%s: a batch failed (%s); scoring its images one by one", model.name, exc)
        return [_score_pixels_safely(model, batch[i : i + 1])[0] for i in range(batch.shape[0])]
    return [Score.ok(v) if v == v and abs(v) != float("inf") else Score.failure("non-finite score")
            for v in values.float().cpu().tolist()]


def scores_to_tensor(scores: Sequence[Score], device: str = "cpu") -> torch.Tensor:
    """A float32 tensor of the values, NaN where an image has no score."""
    import torch

    return torch.tensor([float("nan") if score.failed else score.value for score in scores], dtype=torch.float32,
                        device=device)
