"""SFT Qwen: Qwen2.5-VL fine-tuned to answer the score question with a rating, no reasoning (Table 2's row).

The paper compares with "supervised fine-tuned Qwen" (section 5.2, Table 2; appendix A, Table A.1's Qwen-SFT)
without publishing its prompt or answer format. Here: one user turn, the image then Q-Insight's score question
(which asks for JSON with a "rating" key), and the answer ``{"rating": x}``; the ``sft`` trainer
(:mod:`iqabench_plugins.rl.sft`) writes the checkpoints. Read with Q-Insight's parser, which accepts the bare JSON.
"""

from __future__ import annotations

from PIL import Image

from iqabench_plugins.mllm.parsing import ParsedAnswer, parse_q_insight
from iqabench_plugins.mllm.prompts import Q_INSIGHT_SCORE_QUESTION
from iqabench_plugins.mllm.q_insight import QInsight


def sft_score_messages(image: Image.Image) -> list[dict]:
    """The SFT Qwen conversation: one user turn, image then the score question."""
    return [{"role": "user", "content": [{"type": "image", "image": image},
                                         {"type": "text", "text": Q_INSIGHT_SCORE_QUESTION}]}]


def sft_score_answer(mos: float) -> str:
    """The answer the SFT learns for an image of ``mos`` (on [1, 5]): the JSON the question asks for."""
    return f'{{"rating": {mos:.2f}}}'


class QwenSFT(QInsight):
    """A Qwen2.5-VL checkpoint of the ``sft`` trainer: the score question, a JSON rating, no reasoning."""

    name = "qwen-sft"
    trainer = "sft"
    default_checkpoint = None
    default_subfolder = None

    def __init__(self, *, checkpoint: str | None = None, **options) -> None:
        """Q-Insight's options (``iqabench list`` shows them); ``checkpoint`` (a trained folder) is required."""
        super().__init__(checkpoint=checkpoint, **options)

    def messages(self, image: Image.Image) -> list[dict]:
        return sft_score_messages(image)

    def parse(self, text: str) -> ParsedAnswer:
        return parse_q_insight(text)

    def runtime_config(self) -> dict:
        return {**super().runtime_config(), "prompt": "score question, no system prompt", "parser": "json rating"}
