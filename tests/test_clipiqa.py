"""CLIP-IQA / CLIP-IQA+ on tiny open_clip models built in code.

The tiny models go through the real loading path: a config registered with
open_clip and a local weights file passed as ``pretrained``. Expected values
are computed here with open_clip directly (encode_image, encode_text, the
softmax of scaled cosines written out), not with the plugin's code.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from iqabench import Record, TrainingSet
from iqabench.errors import CheckpointError, IQABenchError
from iqabench_plugins.clipiqa.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, load_clip
from iqabench_plugins.clipiqa.checkpoint import CONFIG_FILE, CONTEXT_FILE, load_context, save_context
from iqabench_plugins.clipiqa.models import ClipIQA, ClipIQAPlus, build_prompt_learner
from iqabench_plugins.clipiqa.prompts import FIVE_PAIRS
from iqabench_plugins.clipiqa.trainer import CoOpTrainer, fit_context

TINY_RN = "iqa-test-tiny-rn"
GOOD_BAD = [("Good photo.", "Bad photo.")]
CLASSES = ["Good photo.", "Bad photo."]
TINY_VIT = "iqa-test-tiny-vit"
TEXT_CFG = {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
CONFIGS = {
    TINY_RN: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": TEXT_CFG,
    },
    TINY_VIT: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 32, "head_width": 16},
        "text_cfg": TEXT_CFG,
    },
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, str]:
    """Register the tiny configs and write one random weights file for each."""
    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, cfg in CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    files = {}
    torch.manual_seed(1)
    for name in CONFIGS:
        model = open_clip.create_model(name, pretrained=None)
        # a non-trivial attention-pool embedding and batch-norm statistics, as trained weights have
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        files[name] = str(folder / f"{name}.safetensors")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, files[name])
    return files


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


@pytest.mark.parametrize("prompts, pairs", [("good-bad", GOOD_BAD), ("five-pairs", FIVE_PAIRS)])
def test_zero_shot_score_is_softmax_of_scaled_cosines(weights, prompts, pairs):
    # at the training resolution an interpolated embedding is the original one: open_clip's own forward applies
    model = ClipIQA(model_name=TINY_RN, pretrained=weights[TINY_RN], prompts=prompts, pos_embedding=True)
    reference = reference_clip(TINY_RN, weights)
    images = [random_image(64, 64, seed) for seed in range(3)]
    expected = [probability_by_hand(reference, im, caption_features(reference, pairs)) for im in images]
    scores = model.score(images)
    assert [s.value for s in scores] == pytest.approx(expected, abs=1e-5)
    assert len(set(round(e, 6) for e in expected)) == 3  # the images are told apart
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

    # interpolated: open_clip's own pool with the embedding resampled bicubically here
    reference = reference_clip(TINY_RN, weights)
    pool = reference.visual.attnpool
    grid = pool.positional_embedding[1:].detach().reshape(2, 2, -1).permute(2, 0, 1)[None]
    spatial = F.interpolate(grid, size=(3, 4), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(12, -1)
    pool.positional_embedding = torch.nn.Parameter(torch.cat([pool.positional_embedding[:1].detach(), spatial]))
    expected = probability_by_hand(reference, image, caption_features(reference, GOOD_BAD))
    assert interpolated.value == pytest.approx(expected, abs=1e-5)


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
    """Context set to the embeddings of real words must encode like the literal sentence."""
    clip = load_clip(TINY_RN, weights[TINY_RN])
    learner = build_prompt_learner(clip, TINY_RN, CLASSES, n_ctx=16)
    tokenizer = open_clip.get_tokenizer(TINY_RN)
    words = ["a"] * 8 + ["the"] * 8
    with torch.no_grad():
        learner.context.copy_(clip.token_embedding(tokenizer(" ".join(words))[0, 1:17]))
        sentences = [f"a a a a a a a a {phrase} the the the the the the the the" for phrase in CLASSES]
        expected = clip.encode_text(tokenizer(sentences))
        assert torch.allclose(learner(), expected, atol=1e-5)


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


def test_coop_trainer_writes_a_loadable_checkpoint(weights, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    records = []
    for i in range(6):
        random_image(64, 80, seed=i).save(images / f"{i}.png")
        mos = 1.0 + 4.0 * i / 5
        records.append(Record(image=f"images/{i}.png", mos_raw=mos, mos=mos, split="train"))
    trainer = CoOpTrainer(iterations=2, batch_size=4, num_workers=0, train_resize=[64, 64])
    out = tmp_path / "checkpoint"
    model_options = {"model_name": TINY_RN, "pretrained": weights[TINY_RN]}
    options = trainer.train(model_options, [TrainingSet("toy", tmp_path, records)], out, seed=0)
    assert options == {"checkpoint": str(out)}
    assert (out / CONTEXT_FILE).is_file() and (out / CONFIG_FILE).is_file()
    context, config = load_context(out)
    assert context.shape == (16, 32)
    assert config["provenance"]["trainer_config"]["lr"] == 0.002 and config["train_resize"] == [64, 64]

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
