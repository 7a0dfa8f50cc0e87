"""iqabench plugin: reasoning MLLM scorers (Q-Insight, RACT, VisualQuality-R1), SFT Qwen and Q-Align.

The generative models share one Qwen2.5-VL loader and batched generator
(:mod:`.generation`), the authors' prompts (:mod:`.prompts`) and tolerant but
strict parsers (:mod:`.parsing`). ``-o checkpoint=tiny-random`` builds a tiny
random Qwen2.5-VL in code (:mod:`.tiny`) for offline smoke tests.
"""

from iqabench.api import hookimpl


@hookimpl
def iqabench_models():
    from iqabench_plugins.mllm.q_align import QAlign
    from iqabench_plugins.mllm.q_insight import QInsight, Ract
    from iqabench_plugins.mllm.qwen_sft import QwenSFT
    from iqabench_plugins.mllm.visualquality import VisualQualityR1

    return [QInsight, Ract, VisualQualityR1, QAlign, QwenSFT]
