"""The grpo trainer's release recipes: VisualQuality-R1's preset and batches, and prompt lengths on real image sizes."""

from collections import Counter

import pytest

from iqabench.errors import IQABenchError
from iqabench_plugins.rl.grpo import GRPO, PRESETS, DatasetBatchSampler, _trl_reward, resized_size, visual_tokens
from iqabench_plugins.rl.rewards import visualquality_fidelity

#: text tokens of the training prompts without the image, measured with Qwen's byte-level BPE (the 151,643-token
#: vocabulary of Qwen2.5-VL, read from dashscope 2.0.2's qwen.tiktoken) over Qwen2.5-VL's chat template; the
#: <|image_pad|> placeholder excluded. benchmarks/qwen_prompt_tokens.py recomputes them with a real checkpoint.
QWEN_TEXT_TOKENS = {"score": 161, "degradation": 203}


def test_visualquality_preset_is_the_release():
    # TianheWu/VisualQuality-R1 @a16dcdb run_scripts/KADID-10K/one_node_run_kadid.sh: --num_generations 6
    # --per_device_train_batch_size 48 --gradient_accumulation_steps 1 on 8 GPUs; grpo_config.py: beta 0.04,
    # lr 1e-6; grpo_jsonl.py: max_completion_length forced to 256; the trainer ignores max_prompt_length
    vq = GRPO(preset="visualquality-r1")
    assert (vq.num_generations, vq.beta, vq.max_completion_length, vq.learning_rate) == (6, 0.04, 256, 1e-6)
    assert (vq.per_device_train_batch_size, vq.batch_size) == (48, 48 * 8)
    assert vq.rewards == ("visualquality_fidelity", "visualquality_format") and vq.prompt == "visualquality"
    assert vq.one_dataset_batches and vq.reward_batch_images == 48 // 6 and vq.max_prompt_length == 0
    assert vq.min_learning_rate == 0.0 and vq.use_bias_correction_kl is False  # linear to 0; plain k3 KL
    # bytedance/Q-Insight @08308fd run_qinsight_score_and_dist.sh: 8 generations, 8 x 2 x 8 GPUs, beta 0.001, 1024
    qi = GRPO()
    assert (qi.num_generations, qi.beta, qi.batch_size, qi.max_prompt_length) == (8, 1e-3, 128, 1024)
    assert not qi.one_dataset_batches and qi.use_bias_correction_kl is False
    # an explicit option wins over the preset
    assert GRPO(preset="visualquality-r1", beta=0.01).beta == 0.01
    with pytest.raises(IQABenchError, match="unknown preset"):
        GRPO(preset="deepseek")
    assert set(PRESETS) == {"q-insight", "visualquality-r1"}


def test_a_comparison_batch_must_not_straddle_processes():
    with pytest.raises(IQABenchError, match="multiple of reward_batch_images"):
        GRPO(preset="visualquality-r1", per_device_train_batch_size=24).check(_one_set())


def _one_set():
    from pathlib import Path

    from iqabench.contracts.dataset import Record
    from iqabench.contracts.trainer import TrainingSet

    return [TrainingSet("a", Path("."), [Record("x", 1.0, 1.0, "train")])]


def test_dataset_batches_come_from_one_dataset_and_follow_trls_order():
    names = ["koniq"] * 10 + ["kadid"] * 7 + ["spaq"] * 3
    sampler = DatasetBatchSampler(names, block=2, mini_repeat_count=3, batch_size=4, repeat_count=2, seed=0)
    order = list(sampler)
    # 5 + 3 + 1 blocks of 2 prompts; generation batches of 4 prompts: 2 full ones of the 9 blocks' 18 prompts ...
    blocks = 10 // 2 + 7 // 2 + 3 // 2
    assert len(order) == len(sampler) == (blocks * 2 // 4) * 4 * 3 * 2
    batch = 4 * 3
    for start in range(0, len(order), batch * 2):
        first, repeat = order[start:start + batch], order[start + batch:start + 2 * batch]
        assert first == repeat  # each generation batch repeated (num_iterations x steps_per_generation)
        prompts = first[::3]
        assert first == [p for p in prompts for _ in range(3)]  # each prompt's generations side by side
        for block in (prompts[:2], prompts[2:]):
            assert len({names[i] for i in block}) == 1  # one dataset per comparison batch
    # every prompt of an epoch at most once, and the same order under the same seed
    seen = Counter(order[::3])
    assert max(seen.values()) == 2 and order == list(DatasetBatchSampler(names, block=2, mini_repeat_count=3,
                                                                        batch_size=4, repeat_count=2, seed=0))


def test_fidelity_is_computed_per_comparison_batch():
    def answer(value):
        return f"<think>x</think><answer>{value}</answer>"

    texts = [answer(v) for v in ("4", "3", "2", "2", "1", "5", "3", "3")]
    mos = [4.0, 4.0, 2.0, 2.0, 1.0, 1.0, 3.0, 3.0]
    ids = ["a", "a", "b", "b", "c", "c", "d", "d"]
    columns = dict(prompts=[None] * 8, completions=[[{"content": t}] for t in texts], task=["score"] * 8, mos=mos,
                   answer=[None] * 8, image_id=ids)
    blocked = _trl_reward("visualquality_fidelity", visualquality_fidelity, {}, block=4)(**columns)
    # two images per comparison batch: (a, b) and (c, d), each scored alone
    assert blocked == pytest.approx(visualquality_fidelity(texts[:4], mos[:4], ids[:4])
                                    + visualquality_fidelity(texts[4:], mos[4:], ids[4:]))
    whole = _trl_reward("visualquality_fidelity", visualquality_fidelity, {}, block=0)(**columns)
    assert whole != pytest.approx(blocked)


# --- prompt lengths over the real datasets' image sizes ---------------------------------------------------------------

#: the training images the Q-Insight-family protocol suites feed, as the model gets them (suites' `inputs`):
#: KonIQ's official 512x384 folder, SPAQ downscaled to a shorter side of 512 (below: smartphone photo sizes of the
#: kind SPAQ holds, landscape and portrait), KADID-10k and KADIS-700K 512x384, PIPAL 288x288
REAL_TRAINING_SIZES = {
    "koniq10k 512x384": [((512, 384), None)],
    "spaq": [((4000, 3000), (512, None)), ((3000, 4000), (512, None)), ((4160, 3120), (512, None)),
             ((3264, 2448), (512, None)), ((4608, 3456), (512, None)), ((1440, 1080), (512, None))],
    "kadid10k": [((512, 384), None)],
    "pipal": [((288, 288), None)],
}


def test_visual_tokens_by_the_qwen25vl_arithmetic():
    # 1024x768 -> 1036x756 (multiples of 28) -> 37 x 27 = 999 tokens; 512x384 -> 504x392 -> 18 x 14 = 252
    assert visual_tokens(1024, 768, 3136, 12845056) == 37 * 27 == 999
    assert visual_tokens(512, 384, 3136, 12845056) == 18 * 14 == 252
    assert visual_tokens(288, 288, 3136, 12845056) == 10 * 10
    # a full-size SPAQ photo, 4000x3000 -> 4004x2996 -> 143 x 107 = 15,301 tokens
    assert visual_tokens(4000, 3000, 3136, 12845056) == 143 * 107
    # SPAQ at a shorter side of 512: 4000x3000 -> 683x512 -> 672x504 -> 24 x 18
    assert resized_size((4000, 3000), (512, None)) == (683, 512)
    assert visual_tokens(683, 512, 3136, 12845056) == 24 * 18


@pytest.mark.parametrize("dataset", sorted(REAL_TRAINING_SIZES))
def test_every_q_insight_training_prompt_fits_its_maximum_length(dataset):
    grpo = GRPO()
    for size, resize in REAL_TRAINING_SIZES[dataset]:
        width, height = resized_size(size, resize)
        tokens = visual_tokens(width, height, grpo.min_pixels, grpo.max_pixels)
        for task in ("score", "degradation"):
            assert QWEN_TEXT_TOKENS[task] + tokens <= grpo.max_prompt_length, (dataset, size, task)


def test_koniq_at_1024x768_or_spaq_at_full_size_would_not_fit():
    grpo = GRPO()
    assert QWEN_TEXT_TOKENS["score"] + visual_tokens(1024, 768, grpo.min_pixels, grpo.max_pixels) == 1160 > 1024
    assert QWEN_TEXT_TOKENS["score"] + visual_tokens(4000, 3000, grpo.min_pixels, grpo.max_pixels) > 1024
