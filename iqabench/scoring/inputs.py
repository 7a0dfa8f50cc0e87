"""What users hold, scored: file paths, PIL images, numpy arrays and tensors.

The engine behind ``model(inputs)`` (:meth:`iqabench.contracts.model.Model.__call__`)
and the reward adapters. Every kind of input ends in one of the two scoring
paths a model has, so no score is computed in a way the CLI does not:

* file paths go through :func:`iqabench.scoring.engine.score_files`, the loop of
  ``iqabench score`` and ``iqabench run`` (decode in workers, the model's
  preprocessor, batches, one outcome per file);
* PIL images and uint8 arrays are converted to 8-bit RGB as files are
  (:func:`iqabench.scoring.images.to_rgb`) and go through the model's preprocessor and
  :func:`iqabench.scoring.engine.score_safely`;
* float tensors and float arrays in [0, 1] go through the model's tensor path
  (:meth:`~iqabench.contracts.model.Model.score_pixels`) when it is declared
  ``differentiable``, else they are rounded to 8-bit images first.

An image that cannot be scored gets :meth:`Score.failure` with the reason;
it is never dropped or given a stand-in value.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

from PIL import Image

from iqabench.errors import IQABenchError
from iqabench.scoring.images import to_rgb
from iqabench.contracts.model import Model, Score

if TYPE_CHECKING:
    import numpy as np
    import torch

    Inputs = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor, Sequence[Any]]

log = logging.getLogger("iqabench.scoring.inputs")


def score_inputs(model: Model, inputs: Inputs, *, batch_size: int = 8, num_workers: int = 0) -> tuple[list[Score], str]:
    """One :class:`Score` per image of ``inputs``, in order, and the device a tensor of them belongs on."""
    if batch_size < 1:
        raise IQABenchError(f"batch size must be a positive integer, got {batch_size}.")
    kind, items = split_inputs(inputs)
    if kind == "paths":
        from iqabench.scoring.engine import score_files

        scores: list[Score] = []
        for batch in score_files(model, items, batch_size=batch_size, num_workers=num_workers):
            scores.extend(score for _, score in batch)
        return scores, "cpu"
    if kind == "arrays":
        kind, items = _arrays_as_images_or_pixels(model, items)
    if kind == "pixels":
        if not items:  # an empty [0, 3, H, W] batch
            return [], str(getattr(inputs, "device", "cpu"))
        device = str(items[0].device)
        if model.differentiable:
            return score_pixel_list(model, items, batch_size=batch_size), device
        from iqabench.scoring.pixels import to_pil_images

        items = [image for pixels in items for image in to_pil_images(pixels[None])]
        return score_images(model, items, batch_size=batch_size), device
    return score_images(model, items, batch_size=batch_size), "cpu"


def split_inputs(inputs: Inputs) -> tuple[str, list[Any]]:
    """``(kind, items)``: ``paths``, ``images`` (PIL), ``arrays`` (numpy, one per image) or ``pixels`` ([3, H, W])."""
    single = _kind(inputs)
    if single == "batch":
        return "pixels", list(_pixel_batch(inputs))
    if single == "array-batch":
        return "arrays", list(inputs)
    if single is not None:
        return single, [inputs]
    if not isinstance(inputs, Sequence):
        raise IQABenchError(_unsupported(inputs))
    kinds = {_kind(item) for item in inputs}
    if not inputs:
        return "images", []
    if len(kinds) != 1 or None in kinds or kinds & {"batch", "array-batch"}:
        names = sorted({type(item).__name__ for item in inputs})
        raise IQABenchError(
            f"a list of inputs holds one kind of image: file paths, PIL images, numpy arrays or [3, H, W] tensors "
            f"(got {', '.join(names)}); pass a batch of tensors as one [B, 3, H, W] tensor."
        )
    kind = kinds.pop()
    items = list(inputs)
    if kind == "pixels":
        items = [_pixel_batch(item)[0] for item in items]
    return kind, items


def _kind(value: Any) -> str | None:
    if isinstance(value, (str, os.PathLike)):
        return "paths"
    if isinstance(value, Image.Image):
        return "images"
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return "array-batch" if value.ndim == 4 else "arrays"
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    if torch is not None and isinstance(value, torch.Tensor):
        return "batch" if value.dim() == 4 else "pixels"
    return None


def _unsupported(value: Any) -> str:
    return (
        f"cannot score a {type(value).__name__}: pass image file paths, PIL images, numpy arrays (HxWx3) or "
        "tensors ([B, 3, H, W] in [0, 1])."
    )


def _pixel_batch(tensor: torch.Tensor) -> torch.Tensor:
    from iqabench.scoring.pixels import as_pixel_batch

    return as_pixel_batch(tensor)


def _arrays_as_images_or_pixels(model: Model, arrays: list[np.ndarray]) -> tuple[str, list[Any]]:
    """uint8 arrays become PIL images (exact); float arrays in [0, 1] become pixels, or 8-bit images."""
    import numpy as np

    dtypes = {array.dtype.kind for array in arrays}
    if dtypes == {"u"} and all(array.dtype == np.uint8 for array in arrays):
        images = []
        for array in arrays:
            if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
                raise IQABenchError(f"numpy images are HxW, HxWx3 or HxWx4, got shape {array.shape}.")
            images.append(to_rgb(Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)))
        return "images", images
    if dtypes != {"f"}:
        raise IQABenchError(
            f"numpy images are uint8, or float in [0, 1]; got {', '.join(sorted({str(a.dtype) for a in arrays}))}. "
            "Convert them, e.g. (array / 65535).astype('float32') for 16-bit images."
        )
    import torch

    pixels = []
    for array in arrays:
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise IQABenchError(f"float numpy images are HxW or HxWx3, got shape {array.shape}.")
        pixels.append(_pixel_batch(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float())[0])
    return "pixels", pixels


def score_images(model: Model, images: Sequence[Image.Image], *, batch_size: int) -> list[Score]:
    """PIL images through the model's preprocessor and ``score_batch``, ``batch_size`` at a time."""
    from iqabench.scoring.engine import score_safely

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
