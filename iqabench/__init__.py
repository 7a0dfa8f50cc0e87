"""iqabench: a plugin-based benchmark harness for no-reference image quality assessment."""

from iqabench import torchvision_shim as _torchvision_shim

_torchvision_shim.install()

import pluggy  # noqa: E402

from iqabench.dataset import Dataset, DatasetIndex, Provenance, Record, rescale_to_1_5  # noqa: E402
from iqabench.factory import create_dataset, create_model, create_trainer  # noqa: E402
from iqabench.model import Model, Score  # noqa: E402
from iqabench.trainer import Trainer, TrainingSet  # noqa: E402

hookimpl = pluggy.HookimplMarker("iqabench")

__version__ = "0.1.0"
__all__ = [
    "Dataset",
    "DatasetIndex",
    "Model",
    "Provenance",
    "Record",
    "Score",
    "Trainer",
    "TrainingSet",
    "create_dataset",
    "create_model",
    "create_trainer",
    "hookimpl",
    "rescale_to_1_5",
]
