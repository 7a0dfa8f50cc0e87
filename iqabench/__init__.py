"""iqabench: a plugin-based benchmark harness for no-reference image quality assessment.

The top level is the user API: ``create_model`` (a :class:`~iqabench.scoring.scorer.Scorer` to call on
images), losses and rewards, ``create_dataset``, ``create_trainer``. Plugins import what they build on from
:mod:`iqabench.api`. The public names below are imported on first use (PEP 562), so ``import iqabench`` and
the command line start without loading torch, scipy or any plugin; the torchvision shim waits on ``sys.meta_path``
for the first import of torchvision (:mod:`iqabench.torchvision_shim`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from iqabench import torchvision_shim as _torchvision_shim

_torchvision_shim.install_on_import()

if TYPE_CHECKING:
    from iqabench.contracts.dataset import Dataset, DatasetIndex, Provenance, Record, rescale_to_1_5
    from iqabench.contracts.model import Model, ModelTraits, Score
    from iqabench.contracts.trainer import Trainer, TrainingSet
    from iqabench.registry.factory import create_dataset, create_model, create_trainer
    from iqabench.scoring.loss import QualityLoss
    from iqabench.scoring.rewards import GRPOReward, ImageReward
    from iqabench.scoring.scorer import Scorer

hookimpl = pluggy.HookimplMarker("iqabench")

__version__ = "0.1.0"

#: the user API (building and calling models, losses, rewards) and, for plugins written before
#: ``iqabench.api`` existed, the contracts; plugins import from :mod:`iqabench.api`
_LAZY = {
    "Scorer": "iqabench.scoring.scorer",
    "QualityLoss": "iqabench.scoring.loss",
    "ImageReward": "iqabench.scoring.rewards",
    "GRPOReward": "iqabench.scoring.rewards",
    "ModelTraits": "iqabench.contracts.model",
    "Dataset": "iqabench.contracts.dataset",
    "DatasetIndex": "iqabench.contracts.dataset",
    "Provenance": "iqabench.contracts.dataset",
    "Record": "iqabench.contracts.dataset",
    "rescale_to_1_5": "iqabench.contracts.dataset",
    "create_dataset": "iqabench.registry.factory",
    "create_model": "iqabench.registry.factory",
    "create_trainer": "iqabench.registry.factory",
    "Model": "iqabench.contracts.model",
    "Score": "iqabench.contracts.model",
    "Trainer": "iqabench.contracts.trainer",
    "TrainingSet": "iqabench.contracts.trainer",
}
__all__ = sorted([*_LAZY, "hookimpl"])


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'iqabench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
