"""CLIP-IQA / CLIP-IQA+ on tiny open_clip models built in code.

The tiny models go through the real loading path: a config registered with
open_clip and a local weights file passed as ``pretrained``. Expected values
are computed here with open_clip directly (encode_image, encode_text, the
softmax of scaled cosines written out), not with the plugin's code.
"""

from __future__ import annotations

import pickle

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from iqabench import Record, TrainingSet
from iqabench.cli import main
from iqabench.errors import CheckpointError, IQABenchError
from iqabench_plugins.clipiqa.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, load_clip
from iqabench_plugins.clipiqa.checkpoint import CONFIG_FILE, CONTEXT_FILE, load_context, save_context
from iqabench_plugins.clipiqa.converter import ClipIQAPlusReleaseConverter
from iqabench_plugins.clipiqa.models import ClipIQA, ClipIQAPlus, build_prompt_learner
from iqabench_plugins.clipiqa.prompts import FIVE_PAIRS
from iqabench_plugins.clipiqa.trainer import CoOpTrainer, cosine_restart_factor, fit_context, training_targets
from tests.helpers import CLASSES, TINY_RN, TINY_VIT, save_tiny_open_clip_models  # noqa: F401  (re-exported)

GOOD_BAD = [("Good photo.", "Bad photo.")]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, str]:
    """Register the tiny configs and write one random weights file for each."""
    return save_tiny_open_clip_models(tmp_path_factory.mktemp("open_clip_configs"))


def reference_clip(name: str, weights: dict[str, str]) -> torch.nn.Module:
    return open_clip.create_model(name, pretrained=weights[name]).eval()


def random_image(height: int, width: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def normalised(image: Image.Image) -> torch.Tensor:
    array = (np.asarray(image, dtype=np.float32) / 255.0 - OPENAI_CLIP_MEAN) / OPENAI_CLIP_STD
    return torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32)).unsqueeze(0)


@torch.no_grad()
def probability_by_hand(clip: torch.nn.Module, image: Image.Image, text_features: torch.Tensor) -> float:
    """Mean over pairs of softmax(logit_scale * cos) for the positive caption; text_features (pairs, 2, dim)."""
    image_feature = F.normalize(clip.encode_image(normalised(image)), dim=-1)[0]
    text = F.normalize(text_features, dim=-1)
    logits = clip.logit_scale.exp() * (text @ image_feature)
    return float(logits.softmax(dim=-1)[:, 0].mean())


@torch.no_grad()
def caption_features(clip: torch.nn.Module, pairs) -> torch.Tensor:
    tokens = open_clip.get_tokenizer(TINY_RN)([c for pair in pairs for c in pair])
    return clip.encode_text(tokens).reshape(len(pairs), 2, -1)


@pytest.mark.slow
@pytest.mark.parametrize("prompts, pairs", [("good-bad", GOOD_BAD), ("five-pairs", FIVE_PAIRS)])
def test_zero_shot_score_is_softmax_of_scaled_cosines(weights, prompts, pairs):
    # at the training resolution an interpolated embedding is the original one: open_clip's own forward applies
    model = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], prompts=prompts, pos_embedding=True)
    reference = reference_clip(TINY_RN, weights)
    images = [random_image(64, 64, seed) for seed in range(3)]
    expected = [probability_by_hand(reference, im, caption_features(reference, pairs)) for im in images]
    scores = model.score(images)
    assert [s.value for s in scores] == pytest.approx(expected, abs=1e-5)
    assert len({round(e, 6) for e in expected}) == 3  # the images are told apart
    assert all(0.0 <= s.value <= 1.0 for s in scores)


def test_dropped_positional_embedding_equals_attention_pool_without_it(weights):
    model = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], pos_embedding=False)
    reference = reference_clip(TINY_RN, weights)
    with torch.no_grad():
        reference.visual.attnpool.positional_embedding.zero_()
    image = random_image(64, 64, seed=5)
    expected = probability_by_hand(reference, image, caption_features(reference, GOOD_BAD))
    assert model.score([image])[0].value == pytest.approx(expected, abs=1e-5)


def test_full_resolution_other_than_training_size(weights):
    """96x128 on a 64-px model: a 3x4 feature grid where the embedding is for 2x2."""
    image = random_image(96, 128, seed=7)
    dropped = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], pos_embedding=False).score([image])[0]
    interpolated = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], pos_embedding=True).score([image])[0]
    assert not dropped.failed and not interpolated.failed
    assert dropped.value != pytest.approx(interpolated.value, abs=1e-7)

    # interpolated as CLIP-IQA's release does: the (1 + 2*2, C) embedding resized to (1 + 3*4, C) as an image,
    # i.e. a 1-D bicubic resampling of the flattened token sequence (class row included), written out here
    reference = reference_clip(TINY_RN, weights)
    pool = reference.visual.attnpool
    resampled = cubic_resample_rows(pool.positional_embedding.detach().numpy(), 13)
    pool.positional_embedding = torch.nn.Parameter(torch.from_numpy(resampled))
    expected = probability_by_hand(reference, image, caption_features(reference, GOOD_BAD))
    assert interpolated.value == pytest.approx(expected, abs=1e-5)


def cubic_resample_rows(rows: np.ndarray, size: int, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution (a = -0.75) along axis 0, half-pixel centres, edge rows repeated."""

    def kernel(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

    length = len(rows)
    out = np.zeros((size, rows.shape[1]), dtype=np.float64)
    for i in range(size):
        source = (i + 0.5) * length / size - 0.5
        base = int(np.floor(source))
        for k in range(base - 1, base + 3):
            out[i] += kernel(source - k) * rows[min(max(k, 0), length - 1)]
    return out.astype(np.float32)


@pytest.mark.slow
def test_mixed_sizes_in_a_batch_score_as_alone_and_tiny_images_fail(weights):
    model = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN])
    images = [random_image(64, 64, 1), random_image(96, 128, 2), random_image(20, 40, 3), random_image(64, 64, 4)]
    together = model.score(images)
    alone = [model.score([image])[0] for image in images]
    assert together[2].failed and "32 px" in together[2].error
    for i in (0, 1, 3):
        assert together[i].value == pytest.approx(alone[i].value, abs=1e-6)


def test_resize_option_and_picklable_preprocessor(weights):
    model = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], resize=32)
    prepare = pickle.loads(pickle.dumps(model.preprocessor()))
    assert tuple(prepare(random_image(96, 128, 0)).shape) == (3, 32, 43)  # 128 * 32 / 96 = 42.7
    assert model.input_resolution() == "shorter side 32"
    fixed = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], resize=[48, 40])
    assert tuple(fixed.preprocessor()(random_image(96, 128, 0)).shape) == (3, 48, 40)
    assert ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN]).input_resolution() == "full"


def test_fixed_resolution_tower_needs_its_size(weights):
    with pytest.raises(IQABenchError, match=r"resize=\[64, 64\]"):
        ClipIQA(model_name=TINY_VIT, pretrained=weights[TINY_VIT])
    model = ClipIQA(model_name=TINY_VIT, pretrained=weights[TINY_VIT], resize=[64, 64])
    reference = reference_clip(TINY_VIT, weights)
    image = random_image(100, 80, seed=3)
    squeezed = image.resize((64, 64), Image.Resampling.BICUBIC)
    expected = probability_by_hand(reference, squeezed, caption_features(reference, GOOD_BAD))
    assert model.score([image])[0].value == pytest.approx(expected, abs=1e-5)


def test_option_errors_say_what_to_do(weights, monkeypatch):
    with pytest.raises(IQABenchError, match="five-pairs"):
        ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], prompts="great-awful")
    with pytest.raises(IQABenchError, match="height, width"):
        ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], resize=[1, 2, 3])
    with pytest.raises(IQABenchError, match="neither an open_clip tag"):
        ClipIQA(model_name=TINY_RN, pretrained="/no/such/weights.bin")
    with pytest.raises(IQABenchError, match="coop"):
        ClipIQAPlus()

    def offline(*args, **kwargs):
        raise RuntimeError("no internet")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(IQABenchError) as error:
        ClipIQA(model_name="RN50", pretrained="openai")
    message = str(error.value)
    assert "timm/resnet50_clip.openai" in message and "RN50-quickgelu" in message and "pretrained=" in message


def test_learned_context_sits_around_the_class_phrase(weights):
    """Context set to the embeddings of real words must encode like the literal sentence.

    The release tokenises ``prefix + " " + classname + "."``: "Good photo." becomes "Good photo.." (BPE: good,
    photo, ..) and the three tokens of the class phrase's slot are those, so the context surrounds "Good photo..".
    """
    clip = load_clip(TINY_RN, weights[TINY_RN])
    learner = build_prompt_learner(clip, TINY_RN, CLASSES, n_ctx=16)
    tokenizer = open_clip.get_tokenizer(TINY_RN)
    words = ["a"] * 8 + ["the"] * 8
    with torch.no_grad():
        learner.context.copy_(clip.token_embedding(tokenizer(" ".join(words))[0, 1:17]))
        sentences = [f"a a a a a a a a {phrase}. the the the the the the the the" for phrase in CLASSES]
        expected = clip.encode_text(tokenizer(sentences))
        assert torch.allclose(learner(), expected, atol=1e-5)


@pytest.mark.slow
def test_two_prompt_learning_steps_change_only_the_context(weights):
    clip = load_clip(TINY_RN, weights[TINY_RN])
    learner = build_prompt_learner(clip, TINY_RN, CLASSES, 16, generator=torch.Generator().manual_seed(0))
    assert [name for name, _ in learner.named_parameters()] == ["context"]
    clip_before = {k: v.clone() for k, v in clip.state_dict().items()}
    context_before = learner.context.detach().clone()
    with torch.no_grad():
        images = torch.cat([normalised(random_image(64, 64, s)) for s in range(6)])
        features = F.normalize(clip.encode_image(images), dim=-1)[None]
    losses = fit_context(
        learner,
        features,
        torch.linspace(0.0, 1.0, 6),
        logit_scale=float(clip.logit_scale.exp()),
        iterations=2,
        batch_size=4,
        lr=0.5,
        momentum=0.9,
        weight_decay=0.0,
        lr_period=300000,
        min_lr=1e-7,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(losses) == 2
    assert not torch.equal(learner.context.detach(), context_before)
    for key, value in clip.state_dict().items():
        assert torch.equal(value, clip_before[key]), key
    assert all(p.grad is None for p in clip.parameters())


def test_saved_context_reloads_and_scores_on_1_5(weights, tmp_path):
    clip = load_clip(TINY_RN, weights[TINY_RN])
    learner = build_prompt_learner(clip, TINY_RN, CLASSES, 16, generator=torch.Generator().manual_seed(3))
    config = {"model_name": TINY_RN, "pretrained": weights[TINY_RN], "n_ctx": 16, "class_names": CLASSES}
    save_context(tmp_path, learner.context, {**config, "pos_embedding": False})
    model = ClipIQAPlus(checkpoint=str(tmp_path))
    assert torch.equal(model.learner.context.detach(), learner.context.detach())
    reference = reference_clip(TINY_RN, weights)
    with torch.no_grad():
        reference.visual.attnpool.positional_embedding.zero_()  # pos_embedding False
        text = learner().reshape(1, 2, -1)
    image = random_image(64, 64, 9)
    expected = 1.0 + 4.0 * probability_by_hand(reference, image, text)
    assert model.score([image])[0].value == pytest.approx(expected, abs=1e-5)
    assert model.config()["native_range"] == [0.0, 1.0] and model.score_range == (1.0, 5.0)
    assert model.num_parameters() == sum(p.numel() for p in clip.parameters()) + 16 * 32


@pytest.mark.slow
def test_coop_trainer_writes_a_loadable_checkpoint(weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i in range(6):
        random_image(64, 80, seed=i).save(images / f"{i}.png")
        raw = 10.0 + 15.0 * i  # KonIQ's 0-100 MOS
        records.append(Record(image=f"images/{i}.png", mos_raw=raw, mos=1.0 + 4.0 * i / 5, split="train"))
    trainer = CoOpTrainer(iterations=2, batch_size=4, num_workers=0, train_resize=[64, 64])
    out = tmp_path / "checkpoint"
    model_options = {"model_name": TINY_RN, "pretrained": weights[TINY_RN]}
    options = trainer.train(model_options, [TrainingSet("toy", tmp_path, records)], out, seed=0)
    assert options == {"checkpoint": str(out)}
    assert (out / CONTEXT_FILE).is_file() and (out / CONFIG_FILE).is_file()
    context, config = load_context(out)
    assert context.shape == (16, 32)
    assert config["provenance"]["trainer_config"]["lr"] == 0.002 and config["train_resize"] == [64, 64]
    assert config["target"] == "raw/100" and config["prompts"][0] == "X " * 16 + "Good photo.."

    again = tmp_path / "again"
    trainer.train(model_options, [TrainingSet("toy", tmp_path, records)], again, seed=0)
    assert torch.equal(load_context(again)[0], context)  # same seed, same context

    model = ClipIQAPlus(**options)
    score = model.score([random_image(96, 128, 1)])[0]
    assert 1.0 <= score.value <= 5.0


def test_trainer_refuses_random_clip_and_bad_checkpoints(tmp_path):
    with pytest.raises(IQABenchError, match="pretrained"):
        CoOpTrainer(iterations=1).train({"model_name": TINY_RN, "pretrained": None}, [], tmp_path)
    with pytest.raises(CheckpointError, match="coop"):
        ClipIQAPlus(checkpoint=str(tmp_path / "missing"))
    (tmp_path / CONFIG_FILE).write_text("{}")
    with pytest.raises(CheckpointError, match="missing context.safetensors"):
        ClipIQAPlus(checkpoint=str(tmp_path))


def test_coop_defaults_are_the_release():
    """IceClear/CLIP-IQA configs/clipiqa/clipiqa_coop_koniq.py: optimizers, lr_config, data, and the released
    iteration."""
    trainer = CoOpTrainer()
    assert trainer.iterations == 80000  # iter_80000.pth
    assert trainer.batch_size == 128  # samples_per_gpu=64 on 2 GPUs
    assert (trainer.lr, trainer.momentum, trainer.weight_decay) == (0.002, 0.0, 0.0)  # SGD(lr=0.002), torch defaults
    assert (trainer.lr_period, trainer.min_lr) == (300000, 1e-7)  # CosineRestart periods=[300000], min_lr=1e-7
    assert trainer.target == "raw/100" and trainer.hflip and trainer.n_ctx == 16
    assert trainer.class_names == ("Good photo.", "Bad photo.")


def test_cosine_restart_schedule_by_hand():
    # lr(t) = 1e-7 + (0.002 - 1e-7) * (1 + cos(pi * t / 300000)) / 2
    factor = lambda t: 0.002 * cosine_restart_factor(t, lr=0.002, min_lr=1e-7, period=300000)  # noqa: E731
    assert factor(0) == pytest.approx(0.002, rel=1e-12)
    assert factor(150000) == pytest.approx(0.00100005, rel=1e-9)  # half way: the mean of 0.002 and 1e-7
    assert factor(80000) == pytest.approx(1e-7 + 0.00099995 * 1.6691306064, rel=1e-8)  # cos(0.2667 pi) = 0.66913
    assert factor(300000) == pytest.approx(0.002, rel=1e-12)  # restart


@pytest.mark.slow
def test_two_sgd_steps_follow_plain_gradient_descent_and_the_schedule(weights):
    """No momentum, no weight decay: each step moves the context by -lr(t) * gradient, lr(t) from the schedule."""
    clip = load_clip(TINY_RN, weights[TINY_RN])
    learner = build_prompt_learner(clip, TINY_RN, CLASSES, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        images = torch.cat([normalised(random_image(64, 64, s)) for s in range(4)])
        features = F.normalize(clip.encode_image(images), dim=-1)[None]  # one view: no flips
    targets = torch.tensor([0.1, 0.4, 0.6, 0.9])
    scale = float(clip.logit_scale.exp())
    context = learner.context.detach().clone()
    expected = context.clone()
    for step in range(2):
        probe = build_prompt_learner(clip, TINY_RN, CLASSES, 16)
        with torch.no_grad():
            probe.context.copy_(expected)
        captions = F.normalize(probe().float(), dim=-1)
        probability = (scale * features[0] @ captions.T).softmax(dim=-1)[:, 0]
        ((probability - targets) ** 2).mean().backward()  # the whole set is the batch: order does not matter
        rate = 1e-7 + 0.5 * (0.002 - 1e-7) * (1 + np.cos(np.pi * step / 4))
        expected = expected - rate * probe.context.grad
    fit_context(learner, features, targets, logit_scale=scale, iterations=2, batch_size=4, lr=0.002, momentum=0.0,
                weight_decay=0.0, lr_period=4, min_lr=1e-7, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(learner.context.detach(), context)
    assert torch.allclose(learner.context.detach(), expected, atol=1e-7)


def test_targets_are_the_releases_mos_over_100():
    koniq = TrainingSet("koniq10k", "/data", [Record("a.jpg", mos_raw=88.39, mos=5.0, split="train"),
                                              Record("b.jpg", mos_raw=3.91, mos=1.0, split="train")])
    assert training_targets([koniq], "raw/100") == pytest.approx([0.8839, 0.0391])
    assert training_targets([koniq], "rescaled") == pytest.approx([1.0, 0.0])
    pipal = TrainingSet("pipal", "/data", [Record("c.png", mos_raw=1500.0, mos=3.0, split="train")])
    with pytest.raises(IQABenchError, match="use target: rescaled"):
        training_targets([pipal], "raw/100")
    # CSIQ-like DMOS on 0-1 (lower is better): the harness flips it to [1, 5]; raw / 100 would invert the prompt
    csiq = TrainingSet("csiq", "/data", [Record("d.png", mos_raw=0.9, mos=1.0, split="train"),
                                         Record("e.png", mos_raw=0.1, mos=5.0, split="train")])
    with pytest.raises(IQABenchError, match="lower-is-better labels"):
        training_targets([csiq], "raw/100")
    assert training_targets([csiq], "rescaled") == pytest.approx([0.0, 1.0])


def released_context(dtype=torch.float16) -> torch.Tensor:
    return (torch.randn(16, 512, generator=torch.Generator().manual_seed(4)) * 0.02).to(dtype)


def test_converter_reads_the_released_prompt_file(tmp_path):
    """pyiqa's CLIP-IQA+_learned_prompts file: the (16, 512) context tensor, torch.save'd (fp16 as CLIP's weights)."""
    context = released_context()
    torch.save(context, tmp_path / "CLIP-IQA+_learned_prompts.pth")
    out = ClipIQAPlusReleaseConverter().convert(tmp_path / "CLIP-IQA+_learned_prompts.pth", tmp_path / "converted")
    loaded, config = load_context(out)
    assert torch.equal(loaded, context.float())
    assert (config["model_name"], config["pretrained"], config["n_ctx"]) == ("RN50", "openai", 16)
    assert config["class_names"] == ["Good photo.", "Bad photo."] and config["pos_embedding"] is False
    assert config["target"] == "raw/100" and len(config["provenance"]["sha256"]) == 64
    assert ClipIQAPlusReleaseConverter.reads_pickle is False


def test_converter_reads_the_mmcv_training_checkpoint(tmp_path):
    """IceClear/CLIP-IQA's iter_80000.pth layout: meta, state_dict (context, buffers, frozen CLIP), optimizer."""
    context = released_context()
    prefix = "generator.clipmodel_0."
    checkpoint = {
        "meta": {"mmedit_version": "0.15.0", "iter": 80000, "config": "exp_name = 'clipiqa_coop_koniq'"},
        "state_dict": {
            prefix + "prompt_learner.ctx": context,
            prefix + "prompt_learner.token_prefix": torch.zeros(2, 1, 512, dtype=torch.float16),
            prefix + "prompt_learner.token_suffix": torch.zeros(2, 60, 512, dtype=torch.float16),
            prefix + "prompt_learner.clip_model.positional_embedding": torch.zeros(77, 512, dtype=torch.float16),
            prefix + "logit_scale": torch.tensor(4.6052),
            "step_counter": torch.tensor([80000.0]),
        },
        "optimizer": {"generator": {"state": {}, "param_groups": [{"lr": 0.0016691, "momentum": 0, "params": [0]}]}},
    }
    torch.save(checkpoint, tmp_path / "iter_80000.pth")
    assert main(["convert", "clip-iqa+", str(tmp_path / "iter_80000.pth"), str(tmp_path / "c")]) == 0
    assert torch.equal(load_context(tmp_path / "c")[0], context.float())


def test_converter_refuses_what_is_not_the_release(tmp_path):
    torch.save(torch.zeros(16, 768), tmp_path / "vit.pth")
    with pytest.raises(CheckpointError, match=r"\(n_ctx, 512\) for CLIP RN50"):
        ClipIQAPlusReleaseConverter().convert(tmp_path / "vit.pth", tmp_path / "a")
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="prompt_learner.ctx"):
        ClipIQAPlusReleaseConverter().convert(tmp_path / "other.pth", tmp_path / "b")
    torch.save({"state_dict": {"ctx": torch.zeros(16, 512), "token_suffix": torch.zeros(2, 50, 512)}},
               tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="token_suffix"):
        ClipIQAPlusReleaseConverter().convert(tmp_path / "x.pth", tmp_path / "c")
    (tmp_path / "pickled.pth").write_bytes(pickle.dumps(Weird(), protocol=2))
    with pytest.raises(CheckpointError, match="weights_only=True"):
        ClipIQAPlusReleaseConverter().convert(tmp_path / "pickled.pth", tmp_path / "d")


class Weird:
    """An arbitrary class: unpickling it would run code a checkpoint should not need."""


def test_coop_precision_is_the_releases_float16_on_cuda_and_float32_on_the_cpu(weights, tmp_path):
    from iqabench_plugins.clipiqa.trainer import resolve_precision

    assert CoOpTrainer().precision == "auto"
    assert resolve_precision("auto", "cuda") == resolve_precision("auto", "cuda:1") == "float16"
    assert resolve_precision("auto", "cpu") == "float32" and resolve_precision("float16", "cpu") == "float16"
    with pytest.raises(IQABenchError, match="precision"):
        CoOpTrainer(precision="int8")
    # forced on the CPU, the release's float16 path runs: a float16 CLIP and a float16 context (its checkpoint
    # says so); the saved context keeps the float16 values
    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i in range(4):
        random_image(64, 64, seed=i).save(images / f"{i}.png")
        records.append(Record(image=f"images/{i}.png", mos_raw=20.0 + 20 * i, mos=1.0 + i, split="train"))
    out = tmp_path / "half"
    CoOpTrainer(iterations=2, batch_size=4, num_workers=0, precision="float16").train(
        {"model_name": TINY_RN, "pretrained": weights[TINY_RN]}, [TrainingSet("toy", tmp_path, records)], out)
    context, config = load_context(out)
    assert config["precision"] == "float16"
    assert torch.equal(context.float(), context.half().float())  # representable in float16


LR = 1e-6


def test_a_float16_context_loses_updates_below_half_its_spacing_as_the_release_does(weights):
    """Plain SGD on a float16 Parameter (the release: no float32 master copy) rounds each update to float16."""
    clip = load_clip(TINY_RN, weights[TINY_RN], precision="fp16")
    half = build_prompt_learner(clip, TINY_RN, CLASSES, 16, generator=torch.Generator().manual_seed(2),
                                dtype=torch.float16)
    assert half.context.dtype == torch.float16
    with torch.no_grad():
        images = torch.cat([normalised(random_image(64, 64, s)) for s in range(4)]).half()
        features = clip.encode_image(images)
        features = (features / features.norm(dim=-1, keepdim=True))[None]
    assert features.dtype == torch.float16
    full = build_prompt_learner(load_clip(TINY_RN, weights[TINY_RN]), TINY_RN, CLASSES, 16,
                                generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full.context.copy_(half.context.float())
    targets = torch.tensor([0.1, 0.4, 0.6, 0.9])
    # a learning rate whose steps are below half the float16 spacing of most context values (~1e-5 near 0.02)
    # but far above float32's (~2e-9)
    for learner, feats in ((half, features), (full, features.float())):
        before = learner.context.detach().clone()
        fit_context(learner, feats, targets, logit_scale=float(clip.logit_scale.exp()), iterations=2, batch_size=4,
                    lr=LR, momentum=0.0, weight_decay=0.0, lr_period=4, min_lr=LR,
                    generator=torch.Generator().manual_seed(0))
        changed = (learner.context.detach() != before).float().mean().item()
        # float16 keeps only the updates of the few values near 0, where its spacing is fine; float32 keeps nearly all
        assert changed < 0.05 if learner is half else changed > 0.5


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE is set", "the hub's host cannot be reached"])
def test_weights_that_cannot_be_fetched_are_refused_at_once_without_hub_retries(offline, monkeypatch, tmp_path):
    """Issue 23: offline, `iqabench score clip-iqa` spent 52 s in the hub client's retries before its error."""
    import socket

    import huggingface_hub
    from huggingface_hub import constants

    tried = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: tried.append(a) or 1 / 0)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", lambda *a, **k: tried.append(a) or 1 / 0)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", lambda *a, **k: tried.append(a) or 1 / 0)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    if offline == "the hub's host cannot be reached":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

        def unreachable(address, timeout=None, *args, **kwargs):
            raise socket.gaierror(-2, "Name or service not known")

        monkeypatch.setattr(socket, "create_connection", unreachable)
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(IQABenchError) as error:
        ClipIQA(model_name="RN50", pretrained="openai")
    assert tried == []  # refused before any download was attempted
    message = str(error.value)
    assert "not in the local cache" in message and "timm/resnet50_clip.openai" in message
    assert ("HF_HUB_OFFLINE" if offline.startswith("HF") else "cannot be reached") in message
