"""iqabench plugin: CLIP-IQA (zero-shot) and CLIP-IQA+ (CoOp prompt learning), the ``coop`` trainer and the
``clip-iqa+`` converter of the released context.

open_clip is imported only when a model is built, so listing plugins stays fast.
"""

from iqabench import hookimpl
from iqabench_plugins.clipiqa.models import ClipIQA, ClipIQAPlus
from iqabench_plugins.clipiqa.trainer import CoOpTrainer


@hookimpl
def iqabench_models():
    return [ClipIQA, ClipIQAPlus]


@hookimpl
def iqabench_trainers():
    return [CoOpTrainer]


@hookimpl
def iqabench_converters():
    from iqabench_plugins.clipiqa.converter import ClipIQAPlusReleaseConverter

    return [ClipIQAPlusReleaseConverter]
