"""iqabench plugin: RALI (Reasoning-Aligned Lightweight IQA), its trainer and the official-release converter."""

from iqabench.api import hookimpl


@hookimpl
def iqabench_models():
    from iqabench_plugins.rali.model import RALI

    return [RALI]


@hookimpl
def iqabench_trainers():
    from iqabench_plugins.rali.trainer import RALITrainer

    return [RALITrainer]


@hookimpl
def iqabench_converters():
    from iqabench_plugins.rali.converter import RALIOfficialConverter

    return [RALIOfficialConverter]
