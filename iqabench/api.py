"""The public surface for plugins: everything a model, dataset, trainer or converter plugin may import.

A plugin imports from here (``from iqabench.api import Model, Score, hookimpl``)
and from the user API at the top level (``iqabench.create_model``), never from
the modules behind them: those are the core's own layout, which may change in
any release. ``docs/plugins.md`` documents every name and the promise that
comes with it:

**Stability.** A name listed in ``__all__`` keeps its meaning and its
signature's existing parameters for the whole 0.x series; a change that would
break a plugin is made by adding (a new keyword with a default, a new name),
and a name is removed only after one minor release in which using it warns.
``tests/test_plugin_api.py`` fails if a built-in plugin imports a core module
other than this one and the top level, so the built-in plugins live by the same
rule as third-party ones.

Names are imported on first use (PEP 562), so ``from iqabench.api import
hookimpl`` in a plugin's entry module loads neither torch nor the scoring
engine; ``iqabench list`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iqabench import hookimpl

if TYPE_CHECKING:
    from iqabench.contracts.converter import Converter
    from iqabench.contracts.dataset import (
        DATA_ENV,
        Dataset,
        DatasetIndex,
        DatasetWarning,
        Direction,
        Provenance,
        Record,
        build_index,
        list_files,
        rescale_to_1_5,
        resolve_data_root,
    )
    from iqabench.contracts.model import Model, ModelTraits, Preprocessing, Score
    from iqabench.contracts.params import accepted_options
    from iqabench.contracts.trainer import Trainer, TrainingSet
    from iqabench.data.hub import offline_reason as hub_offline_reason
    from iqabench.data.sources import DatasetSource, HubFile, HubMetas
    from iqabench.efficiency.measure import parameters_on_meta
    from iqabench.errors import (
        CheckpointError,
        DatasetNotFoundError,
        DuplicateNameError,
        ImageLoadError,
        IQABenchError,
        UnknownNameError,
        did_you_mean,
    )
    from iqabench.files import atomic_write_json, atomic_write_text
    from iqabench.lazy import inference_mode, lazy_module
    from iqabench.progress import bar as progress_bar
    from iqabench.provenance import package_versions
    from iqabench.reasoning.describe import ImageToDescribe, describe
    from iqabench.reasoning.texts import ReasoningText, read_texts
    from iqabench.registry.discovery import default_registry
    from iqabench.registry.factory import create_model
    from iqabench.registry.options import check_options
    from iqabench.run.distributed import launched_processes, processes
    from iqabench.run.training import cached_step
    from iqabench.scoring.images import ImageReading, load_image
    from iqabench.scoring.loader import Resize, iterate_batches
    from iqabench.scoring.pixels import crop, normalize, resize_bicubic

#: public name -> (module, name there), grouped as docs/plugins.md documents them
_PUBLIC: dict[str, tuple[str, str]] = {
    # the contracts and the hook marker
    **{name: ("iqabench.contracts.model", name) for name in ("Model", "ModelTraits", "Preprocessing", "Score")},
    **{name: ("iqabench.contracts.dataset", name) for name in (
        "DATA_ENV", "Dataset", "DatasetIndex", "DatasetWarning", "Direction", "Provenance", "Record", "build_index",
        "list_files", "rescale_to_1_5", "resolve_data_root")},
    **{name: ("iqabench.contracts.trainer", name) for name in ("Trainer", "TrainingSet")},
    "Converter": ("iqabench.contracts.converter", "Converter"),
    # where `iqabench data download` fetches a dataset (a dataset class's `download`)
    **{name: ("iqabench.data.sources", name) for name in ("DatasetSource", "HubFile", "HubMetas")},
    # whether weights that are not cached can be fetched now (offline mode, no connection), without the hub's retries
    "hub_offline_reason": ("iqabench.data.hub", "offline_reason"),
    # errors whose messages reach the user as one line
    **{name: ("iqabench.errors", name) for name in (
        "CheckpointError", "DatasetNotFoundError", "DuplicateNameError", "IQABenchError", "ImageLoadError",
        "UnknownNameError", "did_you_mean")},
    # other plugins: building them and checking options meant for them
    "create_model": ("iqabench.registry.factory", "create_model"),
    "default_registry": ("iqabench.registry.discovery", "default_registry"),
    "accepted_options": ("iqabench.contracts.params", "accepted_options"),
    "check_options": ("iqabench.registry.options", "check_options"),
    # images: reading files as the harness does, batches for trainers, torch twins of PIL preprocessing
    "ImageReading": ("iqabench.scoring.images", "ImageReading"),
    "load_image": ("iqabench.scoring.images", "load_image"),
    "iterate_batches": ("iqabench.scoring.loader", "iterate_batches"),
    "Resize": ("iqabench.scoring.loader", "Resize"),
    **{name: ("iqabench.scoring.pixels", name) for name in ("crop", "normalize", "resize_bicubic")},
    # imports on first use
    **{name: ("iqabench.lazy", name) for name in ("inference_mode", "lazy_module")},
    # reasoning texts
    **{name: ("iqabench.reasoning.describe", name) for name in ("ImageToDescribe", "describe")},
    **{name: ("iqabench.reasoning.texts", name) for name in ("ReasoningText", "read_texts")},
    # training steps, processes, files, provenance, progress, parameter counts
    "cached_step": ("iqabench.run.training", "cached_step"),
    **{name: ("iqabench.run.distributed", name) for name in ("launched_processes", "processes")},
    **{name: ("iqabench.files", name) for name in ("atomic_write_json", "atomic_write_text")},
    "package_versions": ("iqabench.provenance", "package_versions"),
    "progress_bar": ("iqabench.progress", "bar"),
    "parameters_on_meta": ("iqabench.efficiency.measure", "parameters_on_meta"),
}

__all__ = sorted([*_PUBLIC, "hookimpl"])


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(
            f"module 'iqabench.api' has no attribute {name!r}; the plugin surface is listed in docs/plugins.md"
        )
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
