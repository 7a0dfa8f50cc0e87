"""The contract every trainer plugin fulfils.

A trainer takes a model's options and the training records of one or more
datasets, writes a checkpoint folder, and returns the model options that load
it (typically ``{"checkpoint": "<folder>"}``). :func:`iqabench.run.training.train_model`
runs every trainer: it writes into a temporary folder and renames it when
:meth:`Trainer.train` returns, so an interrupted training never leaves a
folder a resume would trust. Hyper-parameters are keyword arguments of
``__init__``, each stored under its own name so :meth:`Trainer.config` can
record them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from iqabench.contracts.dataset import Record
from iqabench.contracts.params import constructor_params


@dataclass(frozen=True)
class TrainingSet:
    """The training records of one dataset and where its images are."""

    name: str
    root: Path
    records: Sequence[Record]
    #: a resize the trainer applies to every image before its own preprocessing (the suite's ``preprocessing`` or
    #: the model's ``inputs``): an object with ``shorter_side``, ``max_side``, ``active`` and a call on a PIL
    #: image, or None. Trainers that cannot apply one say so (``applies_resize``).
    resize: Any = None

    def image_paths(self) -> list[Path]:
        return [self.root / r.image for r in self.records]


class Trainer(ABC):
    """Base class of trainers. Hyper-parameters are keyword arguments of ``__init__``."""

    #: registry name, e.g. ``"rali"``
    name: ClassVar[str]
    #: the model this trainer's checkpoints are for
    model: ClassVar[str]
    #: whether :meth:`train` shares its work among the processes of an ``accelerate launch`` (as trainers built on
    #: the transformers/trl Trainer do); if not, only the main process trains and the others wait for it
    uses_all_processes: ClassVar[bool] = False
    #: whether :meth:`train` applies :attr:`TrainingSet.resize`; a suite that resizes a training set for a trainer
    #: that does not is refused before anything runs
    applies_resize: ClassVar[bool] = False

    @abstractmethod
    def train(
        self,
        model_options: dict[str, Any],
        datasets: Sequence[TrainingSet],
        out_dir: Path,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> dict[str, Any]:
        """Train, write the checkpoint into ``out_dir`` and return the options that load it.

        Returned paths may be absolute or relative to ``out_dir``; the runner
        rewrites ``out_dir`` to its final location after the rename.
        """

    def config(self) -> dict[str, Any]:
        """Hyper-parameters, recorded with the checkpoint: every ``__init__`` keyword, read back by name."""
        return {**constructor_params(self), **self.runtime_config()}

    def runtime_config(self) -> dict[str, Any]:
        """Fixed facts of the recipe that no option sets (the loss, the schedule's shape)."""
        return {}
