"""IQA models as rewards: the plain image-generation callable and trl's GRPO reward-function convention.

trl's convention is checked by running trl itself: one ``GRPOTrainer`` step on a
tiny text model built in code, whose completions are turned into images.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqabench import create_model
from iqabench.errors import IQABenchError
from iqabench.scoring.rewards import GRPOReward, ImageReward
from tests.differentiable import mid_grey_photo, model_options
from tests.test_clipiqa import weights  # noqa: F401  (the tiny open_clip fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reward_backprop.py"


@pytest.fixture(scope="module")
def rali(weights, tmp_path_factory):  # noqa: F811
    return create_model("rali", **model_options("rali", weights, tmp_path_factory.mktemp("rali")))


def textured(level: float, size: int = 192, seed: int = 0) -> Image.Image:
    """Grey noise whose contrast grows with ``level`` in [0, 1]: NIQE scores it (at least two 96-px blocks)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(np.clip(rng.normal(128, 5 + 60 * level, (size, size, 3)), 0, 255).astype(np.uint8))


def test_image_reward_is_the_score_on_0_1_and_nan_where_unscored():
    niqe = create_model("niqe")
    reward = ImageReward(niqe, batch_size=2)
    images = [textured(0.1), textured(0.9), textured(0.5, size=64)]
    rewards = reward(images, prompts=["a", "b", "c"])
    scores = niqe(images)
    assert torch.allclose(rewards[:2], (1 - scores[:2] / 100).clamp(0, 1))  # NIQE: lower is better on [0, 100]
    assert math.isnan(float(rewards[2])) and "96x96 blocks" in niqe.last_errors[2]
    with pytest.raises(IQABenchError, match="3 images but 2 prompts"):
        reward(images, prompts=["a", "b"])


@pytest.mark.slow
def test_image_reward_keeps_the_graph_for_a_differentiable_model(rali):
    reward = ImageReward(rali)
    pixels = torch.cat([mid_grey_photo(), mid_grey_photo().flip(-1)]).requires_grad_(True)
    rewards = reward(pixels)
    assert rewards.requires_grad and rewards.shape == (2,)
    assert torch.allclose(rewards.detach(), rali.to_reward(rali(pixels.detach())), atol=1e-5)
    rewards.sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0
    with torch.no_grad():
        assert not reward(pixels).requires_grad
    assert not ImageReward(rali, differentiable=False)(pixels).requires_grad
    with pytest.raises(IQABenchError, match="'niqe' is not differentiable"):
        ImageReward(create_model("niqe"), differentiable=True)


@pytest.mark.slow
def test_the_example_trains_a_generator_whose_reward_rises():
    spec = importlib.util.spec_from_file_location("reward_backprop", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    history = example.main(steps=4)
    assert len(history) == 4 and history[-1] > history[0]


@pytest.mark.slow
def test_a_grpo_reward_inside_trls_own_training_step(tmp_path):
    """A tiny causal LM writes 4 bytes per completion; each completion becomes an image whose contrast follows its
    bytes; NIQE scores it. trl must call the adapter with its keywords and log the rewards it returned."""
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from iqabench_plugins.mllm.tiny import build_byte_tokenizer

    tokenizer = build_byte_tokenizer()
    tokenizer.chat_template = None  # plain-text prompts
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    policy = Qwen2ForCausalLM(config)
    seen: dict[str, object] = {}

    def render(prompts, completions, **columns):
        seen.update(keywords=sorted(columns), prompts=list(prompts), completions=list(completions))
        seen["images"] = [textured(sum(c.encode()[:4]) / 1020) for c in completions]
        return seen["images"]

    niqe = create_model("niqe")
    reward = GRPOReward(niqe, render)
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=4, report_to=[], bf16=False, use_cpu=True, logging_steps=1,
                      save_strategy="no", beta=0.0)
    dataset = Dataset.from_dict({"prompt": ["a photo of", "a cat"], "style": ["plain", "plain"]})
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    trainer.train()
    assert {"completion_ids", "log_extra", "log_metric", "trainer_state", "style"} <= set(seen["keywords"])
    logged = trainer.state.log_history[0]
    expected = (1 - niqe(seen["images"]) / 100).clamp(0, 1)
    assert logged["rewards/iqa_niqe/mean"] == pytest.approx(float(expected.mean()), abs=1e-4)
    assert logged["iqa_niqe/unscored"] == 0.0


def test_a_grpo_reward_gives_none_where_there_is_no_image_or_no_score():
    niqe = create_model("niqe")
    logged = {}
    reward = GRPOReward(niqe, lambda completions, **_: [textured(0.2), None, textured(0.2, size=64)], name="sharp")
    rewards = reward(prompts=["p"] * 3, completions=["x", "y", "z"], log_metric=logged.__setitem__)
    assert rewards[0] == pytest.approx(float(1 - niqe([textured(0.2)])[0] / 100), abs=1e-6)
    assert rewards[1:] == [None, None] and reward.__name__ == "sharp"
    assert logged == {"sharp/unscored": pytest.approx(2 / 3)}
    with pytest.raises(IQABenchError, match="returned 1 images for 3 completions"):
        GRPOReward(niqe, lambda completions, **_: [None])(prompts=["p"] * 3, completions=["x", "y", "z"])
