"""The protocol suites run as the paper ran Table 2: every trainable peer trained, through the real training paths.

suites/single_domain_koniq.yaml is run offline with only its checkpoints and step counts shrunk: tiny Qwen2.5-VL
and CLIP models built in code, one or two optimiser steps, and tiny images in the datasets' real layouts (label
files named and formatted as their owners distribute them, KonIQ with both image folders, Q-Insight's KADIS-700K
train_dist.json). Trainers, presets, inputs and released rows are the suite's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import tests.test_datasets as layouts
from iqabench.reasoning.texts import ReasoningText, TextsWriter
from iqabench.run.runner import run_suite
from tests.helpers import save_tiny_clip, save_tiny_open_clip

SUITES = Path(__file__).resolve().parents[1] / "suites"
SIZE = (64, 48)  # every image: large enough for the tiny ResNet CLIP (32 pixels) and Qwen2.5-VL (28)


def write_image(path: Path, size: tuple[int, int] = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = sum(path.name.encode())
    pixels = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    fmt = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    Image.fromarray(pixels).save(path, format=fmt)


def real_layouts(data: Path, monkeypatch) -> None:
    monkeypatch.setattr(layouts, "write_image", write_image)
    layouts.make_koniq(data / "koniq10k")
    for name, *_ in layouts.KONIQ_ROWS:  # KonIQ's second official folder, the one the Q-Insight family reads
        write_image(data / "koniq10k" / "512x384" / name, (32, 24))
    layouts.make_spaq(data / "spaq")
    layouts.make_kadid(data / "kadid10k")
    layouts.make_pipal(data / "pipal")
    layouts.make_livew(data / "livew")
    layouts.make_agiqa(data / "agiqa3k")
    layouts.make_csiq(data / "csiq")
    kadis = data / "kadis700k" / "refA_sd_brief"
    entries = [{"image": "dist_imgs/a_01_03.png", "distortion_class": "blur", "severity": "obvious"},
               {"image": "dist_imgs/b_09_01.png", "distortion_class": None, "severity": None}]
    for entry in entries:
        write_image(kadis / entry["image"])
    (kadis / "metas").mkdir(parents=True)
    (kadis / "metas" / "train_dist.json").write_text(json.dumps(entries))


def shrunk(suite: dict, tmp_path: Path) -> dict:
    """The protocol suite with tiny checkpoints and a step or two; its trainers, presets and inputs kept."""
    clip_name, clip_weights = save_tiny_open_clip(tmp_path / "open_clip")
    tiny_qwen = {"checkpoint": "tiny-random", "max_new_tokens": 8}
    small_rl = {"num_generations": 2, "batch_size": 4, "per_device_train_batch_size": 4, "max_steps": 1,
                "max_completion_length": 8, "gradient_checkpointing": False, "save_steps": 1000}
    texts = tmp_path / "texts.jsonl"  # RALI's reasoning texts, as Q-Insight would write them for KonIQ's train split
    with TextsWriter(texts) as writer:
        writer.write(ReasoningText(image=f"1024x768/{name}", seed=0, text=f"{'sharp' if mos > 30 else 'blurry'} photo",
                                   dataset="koniq10k") for name, mos, _, split in layouts.KONIQ_ROWS
                     if split == "training")
    models = []
    for entry in suite["models"]:
        label = entry["label"]
        if entry["name"] in ("niqe", "brisque"):
            continue  # handcrafted: nothing to train, and 64x48 images are below their block size
        if entry["name"] == "clip-iqa+":
            entry["options"] = {"model_name": clip_name, "pretrained": clip_weights}
            entry["trainer_options"] = {"iterations": 2, "batch_size": 2, "num_workers": 0}
        elif entry["name"] == "q-align":  # released mPLUG-Owl2 checkpoints: the generic route on a tiny Qwen
            entry["options"] = {"checkpoint": "tiny-random"}
            entry["dtype"] = "float32"
        elif entry["name"] == "qwen-sft":
            entry["options"] = dict(tiny_qwen)
            entry["trainer_options"] = {"batch_size": 2, "per_device_train_batch_size": 2, "max_steps": 1,
                                        "gradient_checkpointing": False, "save_steps": 1000}
        elif entry["name"] == "visualquality-r1":
            entry["options"] = dict(tiny_qwen)
            entry["trainer_options"] = {**entry["trainer_options"], **small_rl, "reward_batch_images": 2}
        elif entry["name"] == "q-insight":
            entry["options"] = dict(tiny_qwen)
            entry["trainer_options"] = {**entry["trainer_options"], **small_rl}
        elif entry["name"] == "rali":
            entry["trainer_options"] = {"texts": str(texts), "backbone": str(save_tiny_clip(tmp_path / "clip")),
                                        "align_epochs": 1, "align_batch_size": 2, "pca_dim": 2, "num_buckets": 2,
                                        "num_prototypes": 2, "score_epochs": 1, "batch_size": 2}
        else:
            raise AssertionError(f"a row the test does not know: {label}")
        if entry.get("dtype") == "bfloat16":
            entry["dtype"] = "float32"
        models.append(entry)
    suite.update(models=models, device="cpu", num_workers=0, batch_size=4, bootstrap=0, correlation="none",
                 efficiency={"enabled": False},
                 reference=str(SUITES.parent / "leaderboards" / "reference" / "table2.csv"))
    return suite


@pytest.mark.slow
def test_table_2_protocol_trains_every_peer_and_marks_every_row(tmp_path, monkeypatch):
    data = tmp_path / "data"
    real_layouts(data, monkeypatch)
    suite = shrunk(yaml.safe_load((SUITES / "single_domain_koniq.yaml").read_text()), tmp_path)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = run_suite(path, tmp_path / "run", data_root=str(data), progress=False)

    models = {m["label"]: m for m in results["models"]}
    weights = {label: m["weights"]["kind"] for label, m in models.items()}
    assert weights == {"CLIP-IQA+": "trained here", "Q-Align (released q-align-iqa)": "released checkpoint",
                       "DeQA-Score (released Mix3)": "released checkpoint", "SFT Qwen": "trained here",
                       "VisualQuality-R1": "trained here", "Q-Insight": "trained here", "RALI": "trained here"}
    for label, kind in weights.items():
        if kind == "trained here":
            assert models[label]["training"]["status"] == "trained", (label, models[label]["training"])
    # every pair was scored (random tiny models may write unparseable answers: counted, never made up)
    assert {p["status"] for p in results["results"]} == {"ok"}

    # each peer trained with its release's recipe, on KonIQ's training split only
    def provenance(label):
        folder = Path(models[label]["options"]["checkpoint"])
        return json.loads((folder / "iqabench_provenance.json").read_text())

    vq, qi = provenance("VisualQuality-R1"), provenance("Q-Insight")
    assert vq["trainer_config"]["preset"] == "visualquality-r1" and vq["trainer_config"]["one_dataset_batches"]
    assert vq["effective"]["beta"] == 0.04 and vq["effective"]["use_bias_correction_kl"] is False
    assert qi["trainer_config"]["preset"] == "q-insight" and qi["effective"]["beta"] == 1e-3
    assert [d["name"] for d in qi["datasets"]] == ["koniq10k"] and qi["datasets"][0]["records"] == 3
    # Q-Insight's degradation data kept as the release keeps it (one JSON null answer); its KonIQ prompts hold
    # the 512x384 images (32x24 here: scaled up to Qwen's 3,136-pixel minimum, 84x56, 3 x 2 = 6 visual tokens)
    assert qi["prompts"]["degradation"] == 2
    assert "512x384" in qi["prompt_tokens"]["score"]["image"]
    assert qi["prompt_tokens"]["score"]["longest"] == qi["prompt_tokens"]["score"]["text_tokens"] + 6

    # the input of every (model, test set) pair is recorded with its source, and listed in the leaderboard
    inputs = {(p["model"], p["test_set"]): p["input"] for p in results["results"]}
    keys = {m["label"]: m["key"] for m in results["models"]}
    koniq = next(t["key"] for t in results["test_sets"] if t["dataset"] == "koniq10k")
    spaq = next(t["key"] for t in results["test_sets"] if t["dataset"] == "spaq")
    assert inputs[(keys["Q-Insight"], koniq)]["dataset_options"] == {"resolution": "512x384"}
    assert "max_prompt_length 1024" in inputs[(keys["Q-Insight"], koniq)]["source"]
    assert inputs[(keys["CLIP-IQA+"], koniq)]["dataset_options"] == {"resolution": "1024x768"}
    assert all(inputs[(key, spaq)]["resize"]["shorter_side"] == 512 for key in keys.values())
    board = (tmp_path / "run" / "leaderboard.md").read_text()
    header = next(line for line in board.splitlines() if line.startswith("| Model"))
    assert header.split("|")[2].strip() == "Weights"
    assert "released checkpoint" in board and "## Inputs and weights" in board
    assert "resolution=512x384" in board and "not retrained" in board
