"""The prompts of the reasoning IQA models, word for word as their authors use them.

Scores of a generative model depend on the exact wording, so these strings are
facts copied from the papers and released code, not paraphrases:

* Q-Insight (and RACT, which keeps Q-Insight's prompt): system prompt and score
  question from bytedance/Q-Insight ``qinsight_multi_task.py`` / ``demo_score.py``,
  identical to Table A.4 of "Reasoning as Representation".
* VisualQuality-R1: one user message (image, then text), no system prompt; the
  question ends with a thinking or a non-thinking suffix (TianheWu/VisualQuality-R1 README).
* Q-Align: the question and the assistant prefix whose next word is the level.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

Q_INSIGHT_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>"
)

Q_INSIGHT_SCORE_QUESTION = (
    "What is your overall rating on the quality of this picture? The rating should be a float between 1 and 5, "
    "rounded to two decimal places, with 1 representing very poor quality and 5 representing excellent quality. "
    'Return the final answer in JSON format with the following keys: "rating": The score.'
)

VISUALQUALITY_QUESTION = (
    "You are doing the image quality assessment task. Here is the question: What is your overall rating on the "
    "quality of this picture? The rating should be a float between 1 and 5, rounded to two decimal places, with 1 "
    "representing very poor quality and 5 representing excellent quality."
)
VISUALQUALITY_THINKING_SUFFIX = (
    " First output the thinking process in <think> </think> tags and then output the final answer with only one "
    "score in <answer> </answer> tags."
)
VISUALQUALITY_PLAIN_SUFFIX = " Please only output the final answer with only one score in <answer> </answer> tags."

Q_ALIGN_QUESTION = "How would you rate the quality of this image?"
#: the assistant's reply starts with this; the model's next word is the quality level
Q_ALIGN_ASSISTANT_PREFIX = "The quality of the image is"
#: Q-Align's five levels, best first, and their weights in the expected score
Q_ALIGN_LEVELS = ("excellent", "good", "fair", "poor", "bad")
Q_ALIGN_LEVEL_WEIGHTS = (5.0, 4.0, 3.0, 2.0, 1.0)


def _image_part(image: Image.Image) -> dict[str, Any]:
    return {"type": "image", "image": image}


def q_insight_messages(image: Image.Image) -> list[dict[str, Any]]:
    """Q-Insight's score-regression conversation: system prompt, then image and question."""
    return [
        {"role": "system", "content": [{"type": "text", "text": Q_INSIGHT_SYSTEM_PROMPT}]},
        {"role": "user", "content": [_image_part(image), {"type": "text", "text": Q_INSIGHT_SCORE_QUESTION}]},
    ]


def visualquality_messages(image: Image.Image, thinking: bool = True) -> list[dict[str, Any]]:
    """VisualQuality-R1's conversation: no system prompt, one user turn."""
    suffix = VISUALQUALITY_THINKING_SUFFIX if thinking else VISUALQUALITY_PLAIN_SUFFIX
    return [{"role": "user",
             "content": [_image_part(image), {"type": "text", "text": VISUALQUALITY_QUESTION + suffix}]}]


def q_align_messages(image: Image.Image) -> list[dict[str, Any]]:
    """Q-Align's question as a chat turn; the assistant prefix is appended after the template."""
    return [{"role": "user", "content": [_image_part(image), {"type": "text", "text": Q_ALIGN_QUESTION}]}]
