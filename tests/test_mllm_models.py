"""MLLM scorers on a tiny random Qwen2.5-VL: prompt, generate, parse, score, failures, checkpoints, Q-Align."""

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from iqabench.errors import CheckpointError, IQABenchError
from iqabench.registry.discovery import default_registry
from iqabench_plugins.mllm.generation import FitForVisionTower
from iqabench_plugins.mllm.prompts import (
    Q_INSIGHT_SCORE_QUESTION,
    Q_INSIGHT_SYSTEM_PROMPT,
    VISUALQUALITY_PLAIN_SUFFIX,
    VISUALQUALITY_QUESTION,
    VISUALQUALITY_THINKING_SUFFIX,
)
from iqabench_plugins.mllm.q_align import QAlign, expected_level_score
from iqabench_plugins.mllm.q_insight import QInsight, Ract
from iqabench_plugins.mllm.released_configs import QWEN25_VL_7B_INSTRUCT
from iqabench_plugins.mllm.tiny import TINY_ARCHITECTURE, save_tiny_qwen25vl
from iqabench_plugins.mllm.visualquality import VisualQualityR1

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # Qwen2.5-VL's image_mean / image_std (preprocessor_config.json)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def images(n=3):
    # different sizes, so prompts in one batch have different lengths and need padding
    sizes = [(64, 48), (56, 56), (84, 56), (60, 40)]
    return [Image.new("RGB", sizes[i % 4], (40 * i, 120, 200 - 30 * i)) for i in range(n)]


def completions_returning(texts):
    """A decode that replaces the random tokens by realistic completions, one per generated row, in order."""
    calls = {"rows": 0}

    def decode(new_tokens):
        rows = new_tokens.shape[0]
        out = [texts[(calls["rows"] + i) % len(texts)] for i in range(rows)]
        calls["rows"] += rows
        return out

    return decode


@pytest.fixture(scope="module")
def q_insight():
    return QInsight(checkpoint="tiny-random", max_new_tokens=8)


def test_registered_with_contract_attributes():
    registry = default_registry()
    for name, trainer, generative in [
        ("q-insight", "grpo", True),
        ("visualquality-r1", "grpo", True),
        ("ract", "ract", True),
        ("q-align", None, False),
    ]:
        cls = registry.model(name)
        assert cls.trainer == trainer
        assert cls.traits.generative is generative
        assert cls.score_range == (1.0, 5.0)


def test_random_model_output_is_a_counted_failure_not_a_score(q_insight):
    scores = q_insight.score(images(3))
    assert len(scores) == 3
    assert all(s.failed for s in scores)
    assert all(s.error.startswith("unparseable answer:") for s in scores)
    assert all(isinstance(s.text, str) for s in scores)  # the raw output is kept for inspection
    assert q_insight.generator.generated_tokens > 0


def test_prompt_is_the_papers(q_insight):
    [text] = q_insight.generator.prompt_texts([q_insight.messages(images(1)[0])])
    assert f"<|im_start|>system\n{Q_INSIGHT_SYSTEM_PROMPT}<|im_end|>" in text
    assert f"<|vision_start|><|image_pad|><|vision_end|>{Q_INSIGHT_SCORE_QUESTION}<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_batches_are_left_padded(q_insight, monkeypatch):
    seen = {}
    generate = q_insight.model.generate

    def spy(**inputs):
        seen["mask"] = inputs["attention_mask"].clone()
        return generate(**inputs)

    monkeypatch.setattr(q_insight.model, "generate", spy)
    q_insight.score([Image.new("RGB", (28, 28)), Image.new("RGB", (112, 112))])
    mask = seen["mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1  # the short prompt is padded on the left
    assert mask[1].all()


def test_success_path_parses_real_generation_rows(q_insight, monkeypatch):
    completions = [
        '<think>Sharp, well exposed.</think>\n<answer>\n{"rating": 4.20}\n</answer>',
        "<think>Heavy JPEG blocking.</think><answer>{rating: 1.85}</answer>",
        "<think>Hmm.</think><answer>good quality</answer>",
    ]
    monkeypatch.setattr(q_insight.generator, "decode", completions_returning(completions))
    scores = q_insight.score(images(3))
    assert [s.value for s in scores[:2]] == [pytest.approx(4.20), pytest.approx(1.85)]
    assert scores[0].text == "Sharp, well exposed."
    assert scores[2].failed and 'no "rating" key' in scores[2].error
    assert scores[2].text == completions[2]


def test_sampling_averages_parsed_samples_and_fails_only_if_none_parse(monkeypatch):
    model = QInsight(checkpoint="tiny-random", max_new_tokens=4, do_sample=True, num_samples=3, temperature=0.7)
    monkeypatch.setattr(
        model.generator,
        "decode",
        completions_returning(
            [
                '<answer>{"rating": 3.0}</answer>',
                "<answer>unsure</answer>",
                '<answer>{"rating": 4.0}</answer>',
                "<answer>?</answer>",
                "nothing",
                "<answer>{}</answer>",
            ]
        ),
    )
    first, second = model.score(images(2))
    assert first.value == pytest.approx(3.5)  # mean of 3.0 and 4.0; the unparseable sample is left out
    assert second.failed and "none of 3 samples parsed" in second.error
    decoding = model.config()["decoding"]
    assert decoding["mode"] == "sampling" and decoding["num_samples"] == 3 and decoding["temperature"] == 0.7


def test_greedy_config_and_bad_decoding_options(q_insight):
    config = q_insight.config()
    assert config["random_weights"] is True
    decoding = config["decoding"]
    assert {k: decoding[k] for k in ("max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_p", "top_k",
                                     "num_samples", "mode", "preset")} == {
        "max_new_tokens": 8,
        "min_new_tokens": None,
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "num_samples": 1,
        "mode": "greedy",
        "preset": "greedy",
    }
    effective = decoding["effective"]
    assert effective["do_sample"] is False and effective["num_beams"] == 1 and effective["repetition_penalty"] == 1.0
    assert effective["max_new_tokens"] == 8 and effective["num_return_sequences"] == 1
    assert config["max_pixels"] == 16384 * 28 * 28 and config["min_pixels"] == 3136
    with pytest.raises(IQABenchError, match="do_sample=true"):
        QInsight(checkpoint="tiny-random", num_samples=4)


# ------------------------------------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def sampling_checkpoint(tmp_path_factory):
    """A tiny checkpoint whose generation_config.json asks for sampling and heavy penalties."""
    folder = save_tiny_qwen25vl(tmp_path_factory.mktemp("sampling") / "ckpt")
    path = folder / "generation_config.json"
    config = json.loads(path.read_text())
    config.update(do_sample=True, temperature=5.0, top_k=3, top_p=0.5, repetition_penalty=4.0, no_repeat_ngram_size=1)
    path.write_text(json.dumps(config))
    return folder


def test_without_the_guards_this_transformers_takes_the_checkpoints_decoding(sampling_checkpoint):
    # the bug being guarded against, reproduced: a greedy GenerationConfig passed to generate on this checkpoint
    from transformers import AutoModelForImageTextToText, GenerationConfig

    net = AutoModelForImageTextToText.from_pretrained(sampling_checkpoint)
    resolved, _ = net._prepare_generation_config(GenerationConfig(do_sample=False, max_new_tokens=8))
    assert resolved.repetition_penalty == 4.0 and resolved.no_repeat_ngram_size == 1


@pytest.mark.slow
def test_greedy_stays_greedy_whatever_the_checkpoints_generation_config_says(sampling_checkpoint, monkeypatch):
    model = QInsight(checkpoint=str(sampling_checkpoint), max_new_tokens=8)
    net, resolved, calls = model.model, [], []
    prepare, generate = net._prepare_generation_config, net.generate

    def spy_prepare(*args, **kwargs):
        out = prepare(*args, **kwargs)
        resolved.append(out[0])
        return out

    def generate_with_logits(**inputs):  # the scorer's own call, also asking for the raw (unprocessed) logits
        out = generate(**inputs, output_logits=True, return_dict_in_generate=True)
        calls.append((out.sequences[:, inputs["input_ids"].shape[1]:], torch.stack(out.logits, dim=1)))
        return out.sequences

    monkeypatch.setattr(net, "_prepare_generation_config", spy_prepare)
    monkeypatch.setattr(net, "generate", generate_with_logits)
    torch.manual_seed(0)
    model.score(images(2))
    # greedy: each token is the arg-max of the raw logits (no penalty, no sampling), up to the row's end token
    eos = model.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    [(tokens, logits)] = calls
    checked = 0
    for row in range(tokens.shape[0]):
        for step in range(tokens.shape[1]):
            assert int(tokens[row, step]) == int(logits[row, step].argmax()), (row, step)
            checked += 1
            if int(tokens[row, step]) == eos:
                break
    assert checked >= 2
    # what the results record is what generate resolved, field by field
    recorded = model.config()["decoding"]
    for field, value in recorded["effective"].items():
        if field != "how":
            assert getattr(resolved[0], field) == (tuple(value) if isinstance(value, list) else value), field
    assert recorded["effective"]["repetition_penalty"] == 1.0 and recorded["effective"]["do_sample"] is False
    assert recorded["ignored_checkpoint_generation_config"]["repetition_penalty"] == 4.0


def test_a_sampling_preset_samples_with_its_own_values_not_the_checkpoints(sampling_checkpoint):
    model = QInsight(checkpoint=str(sampling_checkpoint), decoding="q-insight-demo", max_new_tokens=4)
    effective = model.config()["decoding"]["effective"]
    # bytedance/Q-Insight src/eval/demo_score.py: do_sample=True, temperature=1.0, top_k=50, top_p=0.95
    assert (effective["do_sample"], effective["temperature"], effective["top_k"],
            effective["top_p"]) == (True, 1.0, 50, 0.95)
    assert effective["repetition_penalty"] == 1.0 and effective["no_repeat_ngram_size"] == 0


def test_presets_and_explicit_overrides():
    def decoding(cls=QInsight, **options):
        return cls(checkpoint="tiny-random", **options).config()["decoding"]

    demo = decoding(decoding="q-insight-demo")
    assert (demo["temperature"], demo["top_p"], demo["top_k"], demo["max_new_tokens"]) == (1.0, 0.95, 50, 1024)
    assert "demo_score.py" in demo["preset_source"]
    # do_sample on top of greedy samples as the release does
    assert decoding(do_sample=True)["top_p"] == 0.95
    assert decoding(cls=VisualQualityR1, do_sample=True)["top_p"] == 1.0
    vllm = decoding(cls=VisualQualityR1, decoding="visualquality-r1-vllm")
    assert (vllm["temperature"], vllm["top_k"], vllm["top_p"], vllm["max_new_tokens"]) == (0.1, 50, 1.0, 512)
    # an explicit option beats the preset
    assert decoding(decoding="q-insight-demo", temperature=0.7, num_samples=4)["temperature"] == 0.7
    assert decoding(decoding="q-insight-demo", max_new_tokens=16)["max_new_tokens"] == 16
    with pytest.raises(IQABenchError, match="no effect with greedy"):
        QInsight(checkpoint="tiny-random", temperature=0.7)
    with pytest.raises(IQABenchError, match="Did you mean 'q-insight-demo'"):
        QInsight(checkpoint="tiny-random", decoding="qinsight-demo")


def test_the_vllm_backend_gets_the_same_decoding_fields():
    from iqabench_plugins.mllm.decoding import PRESETS, resolve_decoding

    def vllm(preset, **explicit):
        options = dict(max_new_tokens=None, min_new_tokens=None, do_sample=None, temperature=None, top_p=None,
                       top_k=None, num_samples=None)
        options.update(explicit)
        return resolve_decoding(preset, sampling_defaults="visualquality-r1", **options).vllm_sampling()

    readme = PRESETS["visualquality-r1-vllm"]  # the README's SamplingParams(temperature=0.1, top_k=50, top_p=1.0)
    assert vllm("visualquality-r1-vllm") == {
        "n": 1, "max_tokens": 512, "min_tokens": 0, "temperature": readme.temperature, "top_p": 1.0, "top_k": 50,
        "min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    greedy = vllm("greedy")
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1 and greedy["repetition_penalty"] == 1.0
    assert vllm("visualquality-r1", top_k=0)["top_k"] == -1  # transformers' "off" is 0, vLLM's is -1


def test_out_of_range_ratings_are_scores_and_are_counted(monkeypatch):
    model = QInsight(checkpoint="tiny-random", max_new_tokens=4, decoding="q-insight-demo", num_samples=2)
    monkeypatch.setattr(model.generator, "decode", completions_returning([
        '<answer>{"rating": 5.2}</answer>', '<answer>{"rating": 4.8}</answer>',  # image 1: one sample above 5
        '<answer>{"rating": 3.0}</answer>', "<answer>none</answer>",            # image 2: one unparseable
        '<answer>{"rating": 0.8}</answer>', '<answer>{"rating": 0.6}</answer>',  # image 3: both below 1
    ]))
    assert model.take_counts()["images"] == 0
    first, second, third = model.score(images(3))
    assert [first.value, second.value, third.value] == pytest.approx([5.0, 3.0, 0.7])
    assert model.take_counts() == {"images": 3, "samples": 6, "unparseable_samples": 1, "out_of_range_samples": 3,
                                   "out_of_range_images": 2}
    assert model.take_counts()["samples"] == 0  # taken: the next test set starts from zero


def test_visualquality_prompts_and_parser(monkeypatch):
    thinking = VisualQualityR1(checkpoint="tiny-random", max_new_tokens=4)
    plain = VisualQualityR1(checkpoint="tiny-random", max_new_tokens=4, thinking=False)
    [t] = thinking.generator.prompt_texts([thinking.messages(images(1)[0])])
    [p] = plain.generator.prompt_texts([plain.messages(images(1)[0])])
    assert (VISUALQUALITY_QUESTION + VISUALQUALITY_THINKING_SUFFIX) in t and "system\nYou are a helpful" in t
    assert (VISUALQUALITY_QUESTION + VISUALQUALITY_PLAIN_SUFFIX) in p
    monkeypatch.setattr(
        thinking.generator, "decode", completions_returning(["<think>Noisy.</think><answer>2.35</answer>", "x"])
    )
    ok, bad = thinking.score(images(2))
    assert ok.value == pytest.approx(2.35) and ok.text == "Noisy."
    assert bad.failed
    assert thinking.config()["thinking"] is True and plain.config()["thinking"] is False


def test_ract_needs_a_checkpoint_and_loads_a_saved_folder(tmp_path):
    with pytest.raises(IQABenchError, match="needs a checkpoint"):
        Ract()
    folder = save_tiny_qwen25vl(tmp_path / "ract-ckpt")
    model = Ract(checkpoint=str(folder), max_new_tokens=4)
    assert model.config()["random_weights"] is False
    assert model.num_parameters() == QInsight(checkpoint="tiny-random", max_new_tokens=4).num_parameters()
    assert all(s.failed for s in model.score(images(2)))


def test_missing_and_incomplete_checkpoint_folders_name_path_and_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(CheckpointError, match="checkpoint folder not found") as err:
        QInsight(checkpoint=str(missing))
    assert str(missing) in str(err.value) and "config.json" in str(err.value)

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="incomplete checkpoint folder") as err:
        VisualQualityR1(checkpoint=str(partial))
    message = str(err.value)
    assert str(partial) in message and "model.safetensors" in message and "preprocessor_config.json" in message

    repo = tmp_path / "Q-Insight"
    save_tiny_qwen25vl(repo / "score_degradation")
    with pytest.raises(CheckpointError, match="subfolder=NAME"):
        QInsight(checkpoint=str(repo))
    assert QInsight(checkpoint=str(repo), subfolder="score_degradation", max_new_tokens=2).source.folder.name == (
        "score_degradation"
    )


def test_hub_id_offline_says_how_to_pass_a_local_folder():
    with pytest.raises(CheckpointError) as err:
        QInsight()  # ByteDance/Q-Insight, subfolder score_degradation; tests run with HF_HUB_OFFLINE=1
    message = str(err.value)
    assert "ByteDance/Q-Insight (subfolder score_degradation)" in message
    assert "-o checkpoint=DIR/score_degradation" in message


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_says_so(q_insight, monkeypatch, caplog):
    q_insight.generator.backoff.limit = None
    generate = q_insight.model.generate
    sizes = []

    def generate_or_oom(**inputs):
        sizes.append(inputs["input_ids"].shape[0])
        if inputs["input_ids"].shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return generate(**inputs)

    monkeypatch.setattr(q_insight.model, "generate", generate_or_oom)
    with caplog.at_level(logging.WARNING):
        scores = q_insight.score(images(4))
    assert len(scores) == 4
    assert sizes == [4, 2, 1, 1, 1, 1]
    assert "retrying with batch size 2" in caplog.text and "retrying with batch size 1" in caplog.text

    def always_oom(**inputs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(q_insight.model, "generate", always_oom)
    with pytest.raises(IQABenchError, match="even at batch size 1"):
        q_insight.score(images(1))
    q_insight.generator.backoff.limit = None


def test_images_are_resized_as_qwen_vl_utils_does_with_pil_bicubic(q_insight, caplog):
    # qwen-vl-utils' smart_resize by hand: sides to multiples of 28, then into [min_pixels, max_pixels]
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8))
    assert FitForVisionTower()(photo).size == (1036, 756)  # round(1024/28)=37, round(768/28)=27; within the budget
    # the 2026 Q-Insight repo's cap 320*28*28: beta = sqrt(1024*768/250880);
    # floor(1024/beta/28)=20, floor(768/beta/28)=15
    capped = FitForVisionTower(max_pixels=320 * 28 * 28)(photo)
    assert capped.size == (560, 420)
    assert np.array_equal(np.asarray(capped), np.asarray(photo.resize((560, 420), Image.BICUBIC)))
    with caplog.at_level(logging.WARNING):
        # 10x20: 28x28 is below min_pixels 3136, beta = sqrt(3136/200): ceil(10*beta/28)=2, ceil(20*beta/28)=3
        assert FitForVisionTower()(Image.new("RGB", (10, 20))).size == (56, 84)
    assert "smaller than the vision tower" in caplog.text
    assert FitForVisionTower()(Image.new("RGB", (56, 84))).size == (56, 84)
    assert len(q_insight.score([Image.new("RGB", (3, 3))])) == 1  # scored (as a failure: random model), no crash


def test_the_processor_gets_the_pre_resized_image_unchanged(q_insight):
    # after the PIL resize the processor (torchvision in transformers 5) must not resample again
    pixels = np.random.default_rng(1).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    image = FitForVisionTower()(Image.fromarray(pixels))
    out = q_insight.processor.image_processor(images=image, return_tensors="pt")
    mean, std = np.array(OPENAI_CLIP_MEAN), np.array(OPENAI_CLIP_STD)
    normalised = (np.asarray(image, dtype=np.float64) / 255 - mean) / std
    # Qwen2.5-VL stacks each 14x14 patch twice (temporal patch 2): compare the multisets of values
    got = np.sort(out["pixel_values"].double().numpy().ravel())
    assert np.abs(got - np.sort(np.repeat(normalised.ravel(), 2))).max() < 1e-5


def test_vllm_backend_without_vllm_is_a_clear_error():
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(IQABenchError, match="needs vLLM"):
            QInsight(checkpoint="tiny-random", backend="vllm")
    else:
        pytest.skip("vllm is installed")


# ------------------------------------------------------------------------------- efficiency-study options


def qwen25vl_parameters(vocab, hidden, mlp, layers, heads, kv_heads, width, vmlp, depth, out, tied):
    """Qwen2.5-VL by hand from its layer shapes: GQA with q/k/v biases, SwiGLU, RMSNorms; ViT with biases, merger."""
    kv = kv_heads * hidden // heads
    layer = (hidden * hidden + hidden) + 2 * (hidden * kv + kv) + hidden * hidden + 3 * hidden * mlp + 2 * hidden
    text = (1 if tied else 2) * vocab * hidden + layers * layer + hidden
    block = 2 * width + (width * 3 * width + 3 * width) + (width * width + width) + 2 * (width * vmlp + vmlp) + (
        vmlp * width + width)
    merger = width + (4 * width * 4 * width + 4 * width) + (4 * width * out + out)
    return text + 3 * 2 * 14 * 14 * width + depth * block + merger


def test_min_new_tokens_fixes_the_generated_length_even_when_the_model_wants_to_stop():
    model = QInsight(checkpoint="tiny-random", max_new_tokens=6)
    eos = model.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    # make end-of-sequence the model's first choice at every step: unconstrained, it stops after one token
    model.model.lm_head.register_forward_hook(lambda module, args, logits: logits.index_add(
        -1, torch.tensor([eos]), torch.full((*logits.shape[:-1], 1), 1e4)))
    lengths = []
    generate = model.model.generate

    def spy(**inputs):
        output = generate(**inputs)
        lengths.append(output.shape[1] - inputs["input_ids"].shape[1])
        return output

    model.model.generate = spy
    model.score(images(2))
    assert lengths == [1] and model.generator.generated_tokens == 2  # one token each: the end of sequence

    fixed = QInsight(checkpoint="tiny-random", max_new_tokens=6, min_new_tokens=6)
    fixed.model, fixed.generator.model = model.model, model.model  # the same EOS-loving network
    lengths.clear()
    fixed.score(images(3))
    assert lengths == [6] and fixed.generator.generated_tokens == 3 * 6
    assert fixed.config()["decoding"]["min_new_tokens"] == 6
    with pytest.raises(IQABenchError, match="min_new_tokens must be between 0 and max_new_tokens"):
        QInsight(checkpoint="tiny-random", max_new_tokens=4, min_new_tokens=5)


def test_random_init_builds_the_released_7b_architecture_on_the_meta_device():
    # the scorer's own code path, at real size, without memory: weights on the meta device
    model = QInsight(random_init=True, device="meta", dtype="bfloat16")
    by_hand = qwen25vl_parameters(152064, 3584, 18944, 28, 28, 4, 1280, 3420, 32, 3584, tied=False)
    assert model.num_parameters() == by_hand == 8_292_166_656  # also the count tests/test_bench_cli.py checks
    assert model.model.dtype == torch.bfloat16 and model.model.device.type == "meta"
    assert len(model.processor.tokenizer) == QWEN25_VL_7B_INSTRUCT["text_config"]["vocab_size"] == 152064
    image_processor = model.processor.image_processor
    assert (image_processor.patch_size, image_processor.merge_size) == (14, 2)
    assert (image_processor.size.shortest_edge, image_processor.size.longest_edge) == (3136, 12845056)
    config = model.config()
    assert config["random_weights"] is True and "random weights: timing only" in config["weights"]
    assert "Qwen2.5-VL-7B-Instruct" in config["checkpoint"]
    assert model.model.config.image_token_id == model.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")


@pytest.mark.slow
def test_random_init_runs_the_whole_scorer_on_a_small_stand_in_architecture(monkeypatch):
    small = {**TINY_ARCHITECTURE, "text_config": {**TINY_ARCHITECTURE["text_config"], "vocab_size": 600}}
    monkeypatch.setattr("iqabench_plugins.mllm.generation.QWEN25_VL_7B_INSTRUCT", small)
    model = Ract(random_init=True, max_new_tokens=3, min_new_tokens=3, dtype="bfloat16")  # no checkpoint needed
    assert model.num_parameters() == qwen25vl_parameters(600, 64, 128, 2, 4, 2, 64, 128, 2, 64, tied=True)
    assert len(model.processor.tokenizer) == 600 and model.model.dtype == torch.bfloat16
    scores = model.score(images(2))
    assert all(s.failed for s in scores)  # random weights: unparseable answers, never a made-up number
    assert model.generator.generated_tokens == 2 * 3


def test_random_init_refuses_contradictory_options():
    with pytest.raises(IQABenchError, match="pass only one of them"):
        QInsight(checkpoint="tiny-random", random_init=True)
    with pytest.raises(IQABenchError, match="backend=transformers"):
        VisualQualityR1(random_init=True, backend="vllm")


# ------------------------------------------------------------------------------------------- Q-Align


def test_expected_level_score_by_hand():
    logits = [2.0, 1.0, 0.0, -1.0, -2.0]  # excellent, good, fair, poor, bad
    e = [math.exp(x) for x in logits]
    by_hand = (5 * e[0] + 4 * e[1] + 3 * e[2] + 2 * e[3] + 1 * e[4]) / sum(e)
    assert by_hand == pytest.approx(4.4519, abs=1e-4)
    assert expected_level_score(logits) == pytest.approx(by_hand, rel=1e-12)
    assert expected_level_score([0.0] * 5) == pytest.approx(3.0)
    assert expected_level_score([50.0, 0, 0, 0, 0]) == pytest.approx(5.0)
    assert expected_level_score([0, 0, 0, 0, 50.0]) == pytest.approx(1.0)
    assert expected_level_score([0, 0, 0, math.log(3.0), 0]) == pytest.approx((5 + 4 + 3 + 2 * 3 + 1) / 7)


def test_q_align_generic_route_matches_a_manual_forward():
    model = QAlign(checkpoint="tiny-random")
    image = images(1)[0]
    score = model.score([image])[0]
    # the same computation written out: chat template + assistant prefix, last-position logits of e/g/f/p/b
    processor, net = model.processor, model.model
    text = processor.apply_chat_template(
        [{"role": "user",
          "content": [{"type": "image", "image": image},
                      {"type": "text", "text": "How would you rate the quality of this image?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<|im_start|>assistant\n")
    inputs = processor(text=[text + "The quality of the image is"], images=[image], return_tensors="pt")
    with torch.no_grad():
        last = net(**inputs).logits[0, -1]
    ids = [processor.tokenizer.convert_tokens_to_ids(c) for c in "egfpb"]  # byte tokens: first letters
    probs = torch.softmax(last[ids].double(), dim=0)
    assert score.value == pytest.approx(float(probs @ torch.tensor([5.0, 4, 3, 2, 1], dtype=torch.float64)), abs=1e-5)
    assert model.config()["level_token_variant"] == "bare"  # " excellent" etc. all start with the space byte


@pytest.mark.slow
def test_q_align_is_deterministic_and_batch_independent():
    model = QAlign(checkpoint="tiny-random")
    batch = images(4)
    together = [s.value for s in model.score(batch)]
    alone = [model.score([image])[0].value for image in batch]
    assert together == pytest.approx(alone, abs=1e-5)
    assert all(1.0 <= v <= 5.0 for v in together)
    assert [s.value for s in model.score(batch)] == together


def test_q_align_one_align_needs_explicit_remote_code_opt_in():
    with pytest.raises(CheckpointError, match="trust_remote_code=true"):
        QAlign()
