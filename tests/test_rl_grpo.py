"""GRPO on a tiny random Qwen2.5-VL: it learns, repeats under a seed, resumes, and refuses bad input early."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from iqabench.contracts.dataset import Record
from iqabench.contracts.trainer import TrainingSet
from iqabench.errors import CheckpointError, IQABenchError, UnknownNameError
from iqabench_plugins.mllm.tiny import save_tiny_qwen25vl
from iqabench_plugins.rl import rewards
from iqabench_plugins.rl.grpo import GRPO
from iqabench_plugins.rl.hf_trainer import use_bf16


def tag_characters(texts, labels, groups):
    """Varies within a group even for a random model, so advantages (and gradients) are not zero."""
    return [sum(c in "<>{}.0123456789" for c in text) / 10 for text in texts]


tag_characters.tasks = ("score", "degradation")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return save_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "base", seed=0)


@pytest.fixture(scope="module")
def training_set(tmp_path_factory) -> TrainingSet:
    root = tmp_path_factory.mktemp("images")
    records = []
    for i in range(4):
        pixels = (np.random.default_rng(i).random((64, 64, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(root / f"{i}.png")
        distortion = {"type": ("jpeg", "motion_blur")[i % 2], "level": 1 + i}
        records.append(Record(image=f"{i}.png", mos_raw=float(i), mos=1.0 + i, split="train", distortion=distortion))
    return TrainingSet(name="tiny", root=root, records=records)


@pytest.fixture(autouse=True)
def _third_party_reward(monkeypatch):
    monkeypatch.setattr(rewards, "_REGISTERED", {"tag_characters": tag_characters})


def small_grpo(**overrides) -> GRPO:
    options = dict(
        rewards=("q_insight_score", "q_insight_degradation", "q_insight_format", "tag_characters"),
        num_generations=2,
        batch_size=4,
        per_device_train_batch_size=4,
        max_steps=2,
        max_completion_length=8,
        learning_rate=1e-3,
        gradient_checkpointing=False,
        save_steps=1000,
    )
    options.update(overrides)
    return GRPO(**options)


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / "model.safetensors"))


def test_paper_defaults():
    grpo = GRPO()
    assert (grpo.num_generations, grpo.beta, grpo.learning_rate, grpo.min_learning_rate) == (8, 1e-3, 1e-6, 1e-9)
    assert (grpo.num_train_epochs, grpo.batch_size) == (10, 128)
    # Q-Insight's loss: ((per_token_loss * mask).sum(1) / mask.sum(1)).mean(), i.e. trl's "grpo" normalisation
    assert grpo.loss_type == "grpo" and grpo.epsilon == 0.2
    # its rollouts: GenerationConfig(do_sample=True, temperature=1) under transformers 4.51, whose defaults are
    # top_k 50 and top_p 1.0 (trl 1.x would otherwise sample with top_k 0, i.e. no top-k)
    assert (grpo.temperature, grpo.top_k, grpo.top_p) == (1.0, 50, 1.0)
    assert (grpo.max_completion_length, grpo.min_pixels, grpo.max_pixels) == (256, 3136, 12845056)
    # both tasks' rewards with the paper's auxiliary weights, and its format reward
    assert grpo.rewards == ("q_insight_score", "q_insight_degradation", "q_insight_format")
    assert grpo.reward_weights is None  # summed with equal weights, as the release
    assert rewards.Q_INSIGHT_CLASS_WEIGHT == 0.25 and rewards.Q_INSIGHT_SEVERITY_WEIGHT == 0.75
    assert rewards.Q_INSIGHT_THRESHOLD == 0.35
    assert grpo.degradation_ratio is None  # the release concatenates both tasks' data
    # Q-Insight's recipe on 8 GPUs: 8 per device x 2 accumulation x 8 processes = 128
    assert grpo.gradient_accumulation_steps(num_processes=8) == 2
    assert grpo.gradient_accumulation_steps(num_processes=1) == 16


def test_batch_size_that_the_processes_cannot_split_is_an_error():
    # 8 per device x 3 processes = 24 completions per micro-step; 128 is not a multiple of 24
    with pytest.raises(IQABenchError, match="batch_size 128 .* 8 x 3 process"):
        GRPO().gradient_accumulation_steps(num_processes=3)


def test_bf16_auto_follows_the_device(monkeypatch):
    assert not use_bf16("auto", "cpu")
    assert use_bf16(True, "cpu") and not use_bf16(False, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert use_bf16("auto", "cuda") and use_bf16("auto", "cuda:1")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert not use_bf16("auto", "cuda")


@pytest.mark.slow
def test_two_multi_task_steps_change_parameters_and_seed_repeats(base, training_set, tmp_path):
    first = small_grpo(degradation_datasets=["tiny"]).train({"checkpoint": str(base)}, [training_set], tmp_path / "a")
    second = small_grpo(degradation_datasets=["tiny"]).train({"checkpoint": str(base)}, [training_set], tmp_path / "b")
    before, after, again = weights(base), weights(first["checkpoint"]), weights(second["checkpoint"])
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) > len(before) // 2
    assert all(torch.equal(after[name], again[name]) for name in after)
    provenance = json.loads((Path(first["checkpoint"]) / "iqabench_provenance.json").read_text())
    assert provenance["base_checkpoint"] == str(base) and provenance["datasets"][0]["records"] == 4
    assert provenance["prompts"] == {"score": 4, "degradation": 4, "degradation_left_out": {"tiny": 0},
                                     "degradation_kept_as_released": {}}
    # what trl was actually configured with, read back from the trainer: the published settings
    effective = provenance["effective"]
    assert effective["loss_type"] == "grpo" and effective["advantage_scaling"] == "group"
    # Q-Insight's loss adds the plain k3 KL (grpo_trainer.py line 692); trl 1.x multiplies it by the importance
    # ratio unless told not to
    assert effective["use_bias_correction_kl"] is False
    # the prompt length: the byte-level tiny tokenizer's text plus 64x64 images -> 56x56, 2 x 2 = 4 visual tokens
    lengths = provenance["prompt_tokens"]
    assert lengths["score"]["longest"] == lengths["score"]["text_tokens"] + 4
    sampling = effective["rollout_sampling"]
    assert (sampling["do_sample"], sampling["temperature"], sampling["top_k"],
            sampling["top_p"]) == (True, 1.0, 50, 1.0)
    assert sampling["repetition_penalty"] == 1.0  # not Qwen2.5-VL's generation_config (1.05)
    assert effective["reward_weights"] == dict.fromkeys(small_grpo().rewards, 1.0)


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(base, training_set, tmp_path):
    out = tmp_path / "run"
    small_grpo(save_steps=2).train({"checkpoint": str(base)}, [training_set], out, seed=0)
    saved = weights(out / "trainer" / "checkpoint-2")
    assert (out / "trainer" / "checkpoint-2" / "iqabench_provenance.json").is_file()
    # max_steps (one epoch) already reached: the resumed run trains no further step, so it must end with the
    # checkpoint's weights; transformers' own loader would silently keep the base weights (see hf_trainer.py)
    assert not all(torch.equal(saved[name], weights(base)[name]) for name in saved)
    resumed = small_grpo(save_steps=2).train({"checkpoint": str(base)}, [training_set], out, seed=0)
    final = weights(resumed["checkpoint"])
    assert all(torch.equal(saved[name], final[name]) for name in saved)


def test_dataset_without_train_split_fails_before_training(base, tmp_path):
    empty = TrainingSet(name="csiq", root=tmp_path, records=[])
    with pytest.raises(IQABenchError, match="'csiq' has no train split"):
        small_grpo().train({"checkpoint": str(base)}, [empty], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_reward_fails_before_training(base, training_set, tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'q_insight_format'"):
        small_grpo(rewards=("q_insight_formt",)).train({"checkpoint": str(base)}, [training_set], tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_checkpoint_of_another_architecture_fails_before_training(training_set, tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(CheckpointError, match="'clip' model.*qwen2_5_vl"):
        small_grpo().train({"checkpoint": str(folder)}, [training_set], tmp_path / "o")
    assert not (tmp_path / "o" / "trainer").exists()
