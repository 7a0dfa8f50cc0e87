"""One construction path for models, trainers and datasets.

Every command, suite, efficiency study and the Python API builds plugin objects
here, so a name is looked up, its options are checked (names and types) and a
device is resolved the same way everywhere, with the same messages. Like
pyiqa's ``create_metric`` or open_clip's ``create_model_and_transforms``: one
call gives a usable object.

:func:`build_model` gives the registered plugin object (what the runner, the
commands and the efficiency study drive); :func:`create_model`, the Python API,
wraps it in the :class:`~iqabench.scoring.scorer.Scorer` users call, or in a
:class:`~iqabench.scoring.loss.QualityLoss`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from iqabench.contracts.dataset import Dataset, dataset_root
from iqabench.contracts.model import Model
from iqabench.contracts.rules import model_problems
from iqabench.contracts.trainer import Trainer
from iqabench.errors import IQABenchError, NotDifferentiableError, PluginError
from iqabench.registry.discovery import PluginRegistry, default_registry
from iqabench.registry.options import check_options

if TYPE_CHECKING:
    from iqabench.scoring.loss import QualityLoss
    from iqabench.scoring.scorer import Scorer

#: the dtypes a model may be asked for; ``auto`` is the model's preferred precision on its device (bfloat16 on
#: a GPU for the MLLMs). A model may refuse one it cannot run (float16 on CPU).
DTYPES = ("auto", "float32", "float16", "bfloat16")
MODEL_ARGUMENTS = ("device", "dtype")


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` where torch sees a GPU; asking for a GPU that is not there is an error."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps|auto", str(device)):
        raise IQABenchError(f"device {device!r} is not one of cpu, cuda, cuda:N, mps or auto.")
    if device == "cpu":
        return device  # without importing torch: `iqabench score niqe` needs none
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise IQABenchError(f"device {device!r} was asked for but torch sees no CUDA GPU; use --device cpu.")
    return device


def check_dtype(dtype: str, where: str = "dtype") -> str:
    if dtype not in DTYPES:
        raise IQABenchError(f"{where} {dtype!r} is not one of {', '.join(DTYPES)}.")
    return dtype


def check_model_options(name: str, options: dict[str, Any], registry: PluginRegistry | None = None) -> dict[str, Any]:
    """The options of model ``name`` checked (names and types) without building it; returns them converted."""
    cls = (registry or default_registry()).model(name)
    return check_options(cls, options, f"model {name!r}", MODEL_ARGUMENTS)


def build_model(
    name: str,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    registry: PluginRegistry | None = None,
    **options: Any,
) -> Model:
    """The registered model ``name`` built with checked ``options``: the plugin object itself.

    The runner, the commands and the efficiency study drive it through its contract (``preprocessor``,
    ``score_batch``...). What only a built model can show (an option not stored under its name, a preprocessor
    that cannot be pickled for the decode workers) is checked here, before any image is scored.
    """
    registry = registry or default_registry()
    options = check_model_options(name, options, registry)
    if dtype is not None:
        options["dtype"] = check_dtype(dtype)
    model = registry.model(name)(**options, device=resolve_device(device))
    problems = model_problems(model)
    if problems:
        raise PluginError("; ".join(problems))
    return model


@overload
def create_model(name: str, *, device: str = ..., dtype: str | None = ..., as_loss: Literal[False] = ...,
                 registry: PluginRegistry | None = ..., **options: Any) -> Scorer: ...


@overload
def create_model(name: str, *, device: str = ..., dtype: str | None = ..., as_loss: Literal[True],
                 registry: PluginRegistry | None = ..., **options: Any) -> QualityLoss: ...


def create_model(
    name: str,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    as_loss: bool = False,
    registry: PluginRegistry | None = None,
    **options: Any,
) -> Scorer | QualityLoss:
    """A ready-to-score model: ``create_model("niqe")``, ``create_model("rali", checkpoint="runs/x/rali")``.

    ``options`` are the model's keyword options (``iqabench list models`` and its
    docs name them); a misspelled or mistyped one is an error naming the valid ones.
    ``dtype=None`` keeps the model's own default. The result is a
    :class:`~iqabench.scoring.scorer.Scorer`: call it on files, images, arrays or
    tensors; ``scorer.model`` is the plugin object.

    ``as_loss=True`` returns the model wrapped as a :class:`iqabench.scoring.loss.QualityLoss`
    (an ``nn.Module`` whose output backpropagates to the input pixels); a model
    that is not differentiable is an error naming those that are.
    """
    registry = registry or default_registry()
    if as_loss and not registry.model(name).traits.differentiable:
        raise NotDifferentiableError(name, registry.differentiable_models())
    model = build_model(name, device=device, dtype=dtype, registry=registry, **options)
    if not as_loss:
        from iqabench.scoring.scorer import Scorer

        return Scorer(model)
    if not model.traits.differentiable:
        raise NotDifferentiableError(name, registry.differentiable_models())
    from iqabench.scoring.loss import QualityLoss

    return QualityLoss(model)


def check_trainer_options(name: str, options: dict[str, Any], registry: PluginRegistry | None = None) -> dict[str, Any]:
    cls = (registry or default_registry()).trainer(name)
    return check_options(cls, options, f"trainer {name!r}")


def create_trainer(name: str, *, registry: PluginRegistry | None = None, **options: Any) -> Trainer:
    options = check_trainer_options(name, options, registry)
    return (registry or default_registry()).trainer(name)(**options)


def trainer_for(model: str, trainer: str | None = None, registry: PluginRegistry | None = None) -> str:
    """The trainer of ``model``: the one named, else the model's own; an error when it has none."""
    registry = registry or default_registry()
    name = trainer or registry.model(model).trainer
    if not name:
        raise IQABenchError(
            f"model {model!r} has no trainer of its own; name one with `trainer:` "
            f"(available: {', '.join(registry.names('trainer'))})."
        )
    registry.trainer(name)  # an unknown name raises with the close matches
    return name


def check_dataset_options(name: str, options: dict[str, Any], registry: PluginRegistry | None = None) -> dict[str, Any]:
    cls = (registry or default_registry()).dataset(name)
    return check_options(cls, options, f"dataset {name!r}", ("root",))


def create_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    registry: PluginRegistry | None = None,
    **options: Any,
) -> Dataset:
    """A dataset plugin pointed at its folder: ``root`` itself, else ``data_root/<its default folder>``."""
    options = check_dataset_options(name, options, registry)
    cls = (registry or default_registry()).dataset(name)
    folder = dataset_root(cls, Path(data_root) if data_root is not None else None,
                          None if root is None else str(root))
    return cls(root=folder, **options)
