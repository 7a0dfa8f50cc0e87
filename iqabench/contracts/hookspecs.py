"""The hooks a plugin implements to add models, datasets and trainers.

A plugin is a plain module (or object) with functions named like these hooks
and decorated with :data:`iqabench.hookimpl`. Each hook returns the classes the
plugin contributes; the registry collects them and keeps track of which plugin
provided which name, so clashes can be reported with both culprits.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

hookspec = pluggy.HookspecMarker("iqabench")


@hookspec
def iqabench_models() -> Sequence[type]:
    """Return the :class:`iqabench.contracts.model.Model` subclasses this plugin provides."""


@hookspec
def iqabench_datasets() -> Sequence[type]:
    """Return the :class:`iqabench.contracts.dataset.Dataset` subclasses this plugin provides."""


@hookspec
def iqabench_trainers() -> Sequence[type]:
    """Return the :class:`iqabench.contracts.trainer.Trainer` subclasses this plugin provides."""


@hookspec
def iqabench_converters() -> Sequence[type]:
    """Return :class:`iqabench.contracts.converter.Converter` subclasses (``iqabench convert NAME SRC OUT``)."""
