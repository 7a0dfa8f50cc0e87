"""Small plugins for testing the harness itself: a dataset written on the fly and simple models."""

from __future__ import annotations

import json
import string
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from iqabench import Dataset, Model, Score, hookimpl
from iqabench.contracts.dataset import build_index
from iqabench.registry.discovery import PluginRegistry


def write_graded_images(root: Path, count: int = 12, seed: int = 0) -> list[tuple[str, float]]:
    """Images whose brightness rises with a known label; returns (relative path, label)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        label = 1.0 + 4.0 * i / (count - 1)
        level = int(20 + 200 * (label - 1) / 4)
        pixels = np.clip(level + rng.integers(-10, 10, (32, 40, 3)), 0, 255).astype(np.uint8)
        name = f"img{i:02d}.png"
        Image.fromarray(pixels).save(root / name)
        rows.append((name, label))
    return rows


class GradedSet(Dataset):
    """Brightness-graded images: even indices train, odd indices test."""

    name = "graded"
    title = "Graded"
    default_dir = "graded"
    expected_files = ("labels.csv",)

    def load(self):
        labels = self.root / "labels.csv" if self.root else None
        if labels is None or not labels.exists():
            raise self.missing_error("labels.csv not found")
        rows = []
        for i, line in enumerate(labels.read_text().splitlines()):
            name, value = line.split(",")
            rows.append({"image": name, "mos_raw": float(value), "split": "train" if i % 2 == 0 else "test"})
        return build_index(self.name, self.root, rows, label_files=["labels.csv"], nominal_range=(1, 5),
                           direction="higher_better", split_source="even/odd", official_count=None)


def make_graded_root(root: Path, count: int = 12) -> Path:
    rows = write_graded_images(root, count)
    (root / "labels.csv").write_text("\n".join(f"{name},{label}" for name, label in rows) + "\n")
    return root


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image, dtype=np.float64).mean())


class Brightness(Model):
    """Mean pixel value: on the graded set it ranks images exactly like the labels."""

    name = "brightness"
    score_range = (0.0, 255.0)

    def __init__(self, *, offset: float = 0.0, device: str = "cpu", dtype: str = "float32") -> None:
        super().__init__(device=device, dtype=dtype)
        self.offset = offset
        self.calls = 0

    def preprocessor(self):
        return brightness

    def score_batch(self, items: Sequence[float]) -> list[Score]:
        self.calls += 1
        return [Score.ok(v + self.offset) for v in items]


class Counting(Brightness):
    """Counts the images it scores, across instances, to tell a resume from a re-score."""

    name = "counting"
    scored: list[int] = []

    def score_batch(self, items):
        Counting.scored.append(len(items))
        return super().score_batch(items)


class Darkness(Brightness):
    """Lower is better: the negated brightness, to check sign handling."""

    name = "darkness"
    lower_better = True

    def score_batch(self, items):
        return [Score.ok(255.0 - v) for v in items]


class Broken(Model):
    """Raises on every batch, as a crashing third-party model would."""

    name = "broken"
    score_range = (0.0, 1.0)

    def score_batch(self, items):
        raise RuntimeError("model exploded")


class Picky(Model):
    """Fails on images darker than a threshold, scores the rest."""

    name = "picky"
    score_range = (0.0, 255.0)

    def preprocessor(self):
        return brightness

    def score_batch(self, items):
        return [Score.ok(v) if v > 60 else Score.failure("too dark for this model") for v in items]


def registry_with(*models: type, datasets: Sequence[type] = (GradedSet,)) -> PluginRegistry:
    plugin = types.SimpleNamespace(
        iqabench_models=hookimpl(lambda: list(models)),
        iqabench_datasets=hookimpl(lambda: list(datasets)),
    )
    registry = PluginRegistry(load_entry_points=False)
    registry.register(plugin, name="test-plugin")
    return registry


#: ``CLIPConfig`` keywords of the tiny CLIP: 2 layers, 32x32 inputs, 16-dimensional projection
TINY_CLIP_CONFIG = {
    "text_config": {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "image_size": 32, "patch_size": 8},
    "projection_dim": 16,
}


def save_tiny_clip(folder: Path) -> Path:
    """A 2-layer transformers CLIP on 32x32 inputs, saved as a checkpoint folder: RALI's real code path, tiny.

    Shared by the bench tests and the benchmarks, which import it as ``tests.helpers`` (pytest puts the
    repository root on ``sys.path``).
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    CLIPModel(CLIPConfig(**TINY_CLIP_CONFIG)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)


#: a tiny open_clip ResNet config (CLIP-IQA's RN50 family, 64-pixel training grid, 32-d embeddings)
TINY_OPEN_CLIP_RN = "iqa-helper-tiny-rn"


def save_tiny_open_clip(folder: Path, seed: int = 1) -> tuple[str, str]:
    """Register :data:`TINY_OPEN_CLIP_RN` with open_clip and write random weights: ``(model_name, weights file)``.

    CLIP-IQA(+)'s real loading path (an open_clip config and a local weights file as ``pretrained``), tiny.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
              "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (folder / f"{TINY_OPEN_CLIP_RN}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_OPEN_CLIP_RN, pretrained=None)
    weights = folder / f"{TINY_OPEN_CLIP_RN}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return TINY_OPEN_CLIP_RN, str(weights)


#: tiny open_clip configurations, registered by :func:`save_tiny_open_clip_models`
TINY_RN = "iqa-test-tiny-rn"
TINY_VIT = "iqa-test-tiny-vit"
CLASSES = ["Good photo.", "Bad photo."]
_TEXT_CFG = {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
TINY_OPEN_CLIP = {
    TINY_RN: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": _TEXT_CFG,
    },
    TINY_VIT: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 32, "head_width": 16},
        "text_cfg": _TEXT_CFG,
    },
}


def save_tiny_open_clip_models(folder: Path) -> dict[str, str]:
    """Register the tiny open_clip configs with open_clip and write one seeded random weights file for each.

    Returns ``{config name: weights file}``, what CLIP-IQA's ``pretrained`` option takes. Registration lasts for
    the process, so a process that reuses ``folder`` calls this again (the weights are only written once).
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, cfg in TINY_OPEN_CLIP.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    files = {name: str(folder / f"{name}.safetensors") for name in TINY_OPEN_CLIP}
    if all(Path(file).exists() for file in files.values()):
        return files
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for name in TINY_OPEN_CLIP:
            model = open_clip.create_model(name, pretrained=None)
            # a non-trivial attention-pool embedding and batch-norm statistics, as trained weights have
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, files[name])
    return files


def save_tiny_clip_with_tokenizer(folder: Path, text_window: int = 64) -> Path:
    """A 2-layer transformers CLIP with a character-level BPE tokenizer (no merges), saved as a folder.

    What the RALI trainer needs (it tokenises the reasoning texts): a word of n letters is n tokens, and texts
    are cut at ``text_window`` tokens.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    torch.manual_seed(5)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=text_window, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return Path(folder)
