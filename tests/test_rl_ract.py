"""RACT end to end on tiny random Qwen2.5-VL models: a folder the `ract` model loads and scores."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from iqabench.contracts.dataset import Record
from iqabench.contracts.trainer import TrainingSet
from iqabench.errors import IQABenchError
from iqabench.reasoning.texts import ReasoningText, TextsWriter
from iqabench.registry.discovery import default_registry
from iqabench_plugins.rl import rewards
from iqabench_plugins.rl.ract import RACT, score_completion, sft_pairs


def tag_characters(texts, labels, groups):
    return [sum(c in "<>{}.0123456789" for c in text) / 10 for text in texts]


tag_characters.tasks = ("score", "degradation")


def images(root: Path, seed: int, n: int = 2) -> TrainingSet:
    root.mkdir(parents=True)
    records = []
    for i in range(n):
        pixels = (np.random.default_rng(seed * 10 + i).random((64, 64, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(root / f"{i}.png")
        records.append(Record(image=f"{i}.png", mos_raw=float(i), mos=2.0 + i, split="train"))
    return TrainingSet(name=root.name, root=root, records=records)


def test_defaults_are_the_ract_of_table_3():
    """Table 5 row 3 (text labels, vision encoder and LLM trained) is Table 3's RACT."""
    ract = RACT()
    assert (ract.labels, ract.train_module) == ("text", "vision+llm")


def test_label_and_module_settings_are_checked(tmp_path):
    datasets = [images(tmp_path / "koniq", 1, n=1), images(tmp_path / "kadid", 2, n=1)]
    assert RACT(score_dataset="kadid").check(datasets) == ["kadid"]
    assert RACT(labels="text+score", score_dataset="all").check(datasets) == ["koniq", "kadid"]
    with pytest.raises(IQABenchError, match="needs labels: text\\+score"):
        RACT(score_dataset="all").check(datasets)
    with pytest.raises(IQABenchError, match="labels 'score' is not one of text, text\\+score"):
        RACT(labels="score").check(datasets)
    with pytest.raises(IQABenchError, match="train_module 'all' is not one of vision\\+llm, vision"):
        RACT(train_module="all").check(datasets)
    with pytest.raises(IQABenchError, match="may not set score_datasets"):
        RACT(grpo={"score_datasets": ["koniq"]}).check(datasets)


def test_text_labels_give_description_pairs_only():
    texts = {"koniq": [{"path": "k.png", "text": "sharp", "mos": 4.0}],
             "kadid": [{"path": "d.png", "text": "blurred", "mos": 1.5}]}
    assert sft_pairs(texts, []) == [
        {"path": "k.png", "task": "describe", "target": "sharp"},
        {"path": "d.png", "task": "describe", "target": "blurred"},
    ]


def test_sft_pairs_take_scores_from_the_score_dataset_only():
    texts = {
        "koniq": [{"path": "k.png", "text": "sharp", "mos": 4.0}],
        "kadid": [{"path": "d.png", "text": "blurred", "mos": 1.5}],
    }
    rows = sft_pairs(texts, ["koniq"])
    assert rows == [
        {"path": "k.png", "task": "describe", "target": "sharp"},
        {"path": "k.png", "task": "score", "target": '<think>\nsharp\n</think>\n<answer>\n{"rating": 4.00}\n</answer>'},
        {"path": "d.png", "task": "describe", "target": "blurred"},
    ]
    assert score_completion("x", 3.456) == '<think>\nx\n</think>\n<answer>\n{"rating": 3.46}\n</answer>'


def test_label_alignment_reads_every_process_file_once(tmp_path, monkeypatch):
    """Under accelerate each process writes texts-<rank>.jsonl; step 3 gets each (image, seed) once."""
    from iqabench.run.training import StepResult

    folder = tmp_path / "2-describe" / "alpha"  # a finished step: the texts are read, nothing is described
    monkeypatch.setattr("iqabench_plugins.rl.ract.cached_step",
                        lambda folder, settings, work, **kwargs: StepResult("reused", {"texts": str(folder)}, {}))
    think = "<think>\n{}\n</think>\n<answer>\n{{\"rating\": 3.00}}\n</answer>"
    with TextsWriter(folder / "texts.jsonl") as writer:
        writer.write([ReasoningText(image="0.png", seed=0, text=think.format("sharp"), gt=2.0),
                      ReasoningText(image="2.png", seed=0, text="", gt=4.0, error="unparseable")])
    with TextsWriter(folder / "texts-1.jsonl") as writer:
        writer.write([ReasoningText(image="1.png", seed=0, text=think.format("noisy"), gt=3.0),
                      ReasoningText(image="0.png", seed=0, text=think.format("again"), gt=2.0)])
    dataset = TrainingSet(name="alpha", root=tmp_path / "alpha", records=[])
    rows = RACT()._label_alignment({}, "unused", dataset, folder, "cpu")
    assert rows == [
        {"path": str(tmp_path / "alpha" / "0.png"), "text": "sharp", "mos": 2.0},
        {"path": str(tmp_path / "alpha" / "1.png"), "text": "noisy", "mos": 3.0},
    ]


@pytest.mark.slow
def test_ract_end_to_end_vision_only(tmp_path, monkeypatch):
    monkeypatch.setattr(rewards, "_REGISTERED", {"tag_characters": tag_characters})
    datasets = [images(tmp_path / "alpha", 1), images(tmp_path / "beta", 2)]
    ract = RACT(
        grpo=dict(
            rewards=("q_insight_score", "q_insight_degradation", "q_insight_format", "tag_characters"),
            num_generations=2, batch_size=2, per_device_train_batch_size=2, max_steps=1,
            max_completion_length=8, learning_rate=1e-3, gradient_checkpointing=False,
        ),
        score_dataset="beta",
        describe_options={"max_new_tokens": 12, "do_sample": True},
        train_module="vision",
        sft_learning_rate=1e-2, sft_batch_size=2, sft_per_device_train_batch_size=2, sft_max_steps=2,
        gradient_checkpointing=False,
    )
    out = tmp_path / "ract"
    options = ract.train({"checkpoint": "tiny-random"}, datasets, out, seed=0)
    final = Path(options["checkpoint"])
    for step in ("1-grpo/alpha", "1-grpo/beta", "2-describe/alpha", "2-describe/beta", "3-sft"):
        assert (out / step / "iqabench_training.json").is_file(), step  # finished and renamed into place
    # vision encoder only: the language model keeps the single-domain weights of the score dataset
    sft_base = load_file(str(out / "1-grpo/beta/final/model.safetensors"))
    trained = load_file(str(final / "model.safetensors"))
    visual = [k for k in trained if k.startswith(("visual.", "model.visual."))]
    language = [k for k in trained if k not in visual]
    assert visual and language
    assert any(not torch.equal(sft_base[k], trained[k]) for k in visual)
    assert all(torch.equal(sft_base[k], trained[k]) for k in language)

    provenance = json.loads((final / "iqabench_provenance.json").read_text())
    assert (provenance["labels"], provenance["train_module"],
            provenance["score_label_datasets"]) == ("text", "vision", [])

    # a re-run finds every step done and trains nothing
    stamp = (final / "model.safetensors").stat().st_mtime_ns
    assert ract.train({"checkpoint": "tiny-random"}, datasets, out, seed=0) == options
    assert (final / "model.safetensors").stat().st_mtime_ns == stamp

    model = default_registry().model("ract")(checkpoint=str(final), max_new_tokens=12)
    scores = model.score([Image.open(datasets[0].root / "0.png").convert("RGB")])
    assert len(scores) == 1 and (scores[0].value is not None or scores[0].error)
