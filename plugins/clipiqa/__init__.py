"""iqabench plugin: CLIP-IQA (zero-shot) and CLIP-IQA+ (CoOp prompt learning), the ``coop`` trainer and the
``clip-iqa+`` converter of the released context.

Every module is imported when its hook is called, and torch and open_clip only when a model is built,
so listing plugins stays fast.
"""

from iqabench.api import hookimpl


@hookimpl
def iqabench_models():
    from iqabench_plugins.clipiqa.models import ClipIQA, ClipIQAPlus

    return [ClipIQA, ClipIQAPlus]


@hookimpl
def iqabench_trainers():
    from iqabench_plugins.clipiqa.trainer import CoOpTrainer

    return [CoOpTrainer]


@hookimpl
def iqabench_converters():
    from iqabench_plugins.clipiqa.converter import ClipIQAPlusReleaseConverter

    return [ClipIQAPlusReleaseConverter]
