"""The bundled suites train what the paper trained: options that exist, and the published settings."""

from pathlib import Path

import pytest
import yaml

from iqabench.registry.discovery import default_registry
from iqabench.registry.options import check_options
from iqabench.run.suite import load_suite

SUITES = Path(__file__).resolve().parents[1] / "suites"
#: run suites that train (efficiency.yaml is a bench suite with a schema of its own)
TRAINING_SUITES = sorted(p.name for p in SUITES.glob("*.yaml") if "train" in yaml.safe_load(p.read_text()))


def trained_entries(name: str):
    suite, _ = load_suite(SUITES / name)
    registry = default_registry()
    for entry in suite.models:
        if entry.train:
            trainer_cls = registry.trainer(entry.trainer or registry.model(entry.name).trainer)
            yield entry, trainer_cls


def test_the_training_suites_are_found():
    assert {"cross_domain.yaml", "ablation_ract.yaml", "smoke_mllm.yaml",
            "single_domain_koniq.yaml"} <= set(TRAINING_SUITES)


@pytest.mark.parametrize("name", TRAINING_SUITES)
def test_every_trainer_option_in_a_suite_exists(name):
    entries = list(trained_entries(name))
    assert entries, f"{name} trains nothing"
    for entry, trainer_cls in entries:
        check_options(trainer_cls, entry.trainer_options, f"{name}: trainer of {entry.display}")
        trainer = trainer_cls(**entry.trainer_options)
        if trainer_cls.name == "ract":
            trainer._grpo()  # RACT's nested grpo options are grpo trainer options


def test_cross_domain_trains_table_3s_ract():
    (entry, trainer_cls), = [(e, t) for e, t in trained_entries("cross_domain.yaml") if t.name == "ract"]
    ract = trainer_cls(**entry.trainer_options)
    # Table 5 row 3: text labels, vision encoder and LLM trained; scores through KonIQ's single-domain model
    assert (ract.labels, ract.train_module, ract.score_dataset) == ("text", "vision+llm", "koniq10k")
    grpo = ract._grpo("koniq10k")
    assert grpo.degradation_data and grpo.loss_type == "grpo" and grpo.top_k == 50


def test_table_5_suite_has_its_three_rows():
    suite, _ = load_suite(SUITES / "ablation_ract.yaml")
    rows = {(e.trainer_options["labels"], e.trainer_options["train_module"]) for e in suite.models}
    assert rows == {("text+score", "vision+llm"), ("text", "vision"), ("text", "vision+llm")}
    assert len({e.trainer_options["steps_dir"] for e in suite.models}) == 1  # they share steps 1 and 2
    assert [d.dataset for d in suite.train.datasets] == ["koniq10k", "spaq", "kadid10k", "pipal"]
    # row 1 puts the scores of every training dataset into the SFT labels (section 5.3: "cross-dataset
    # annotations carry annotator biases"); the text rows keep KonIQ's single-domain model as the base
    row1 = next(e for e in suite.models if e.trainer_options["labels"] == "text+score")
    assert row1.trainer_options["score_dataset"] == "all"


def test_smoke_suite_runs_multi_task_grpo_and_text_only_ract():
    (entry, trainer_cls), = list(trained_entries("smoke_mllm.yaml"))
    ract = trainer_cls(**entry.trainer_options)
    assert ract.labels == "text" and ract._grpo("synthetic").degradation_datasets == ("synthetic",)


def _reported(table: str) -> dict[tuple[str, str], tuple[float, float]]:
    import csv

    with open(SUITES.parent / "leaderboards" / "reference" / table, newline="", encoding="utf-8") as handle:
        return {(r["model"], r["dataset"]): (float(r["plcc"]), float(r["srcc"])) for r in csv.DictReader(handle)}


def test_table_5s_csiq_column_is_live_w_in_the_reference_and_the_suite():
    table3, table5 = _reported("table3.csv"), _reported("table5.csv")
    row3 = "Row 3 (text labels, VE + LLM)"
    # row 3 is Table 3's RACT: equal on every dataset the two tables share, and its printed "CSIQ" value is LiveW's
    for dataset in ("koniq10k", "kadid10k", "agiqa3k", "livew"):
        assert table5[(row3, dataset)] == table3[("RACT", dataset)]
    assert table5[(row3, "livew")] == (0.881, 0.846) and table3[("RACT", "csiq")] == (0.892, 0.838)
    assert not any(dataset == "csiq" for _, dataset in table5)
    suite, _ = load_suite(SUITES / "ablation_ract.yaml")
    tested = [ref.dataset for ref in suite.test.out_of_domain]
    assert "livew" in tested and "csiq" in tested


@pytest.mark.parametrize("name, trained, released", [
    ("single_domain_koniq.yaml", {"CLIP-IQA+": "coop", "SFT Qwen": "sft", "VisualQuality-R1": "grpo",
                                  "Q-Insight": "grpo", "RALI": "rali"},
     {"Q-Align (released q-align-iqa)", "DeQA-Score (released Mix3)"}),
    ("cross_domain.yaml", {"VisualQuality-R1": "grpo", "Q-Insight": "grpo", "RACT": "ract"},
     {"Q-Align (released q-align-iqa)", "DeQA-Score (released Mix3)"}),
])
def test_protocol_suites_train_every_trainable_peer_and_mark_the_released_ones(name, trained, released):
    """Table 2: "all methods (except handcrafted ones) are trained on the KonIQ dataset"; Table 3: on KonIQ,
    SPAQ, KADID and PIPAL. What cannot be retrained here is a released checkpoint that says why."""
    suite, _ = load_suite(SUITES / name)
    assert [d.dataset for d in suite.train.datasets] == (
        ["koniq10k"] if name.startswith("single") else ["koniq10k", "spaq", "kadid10k", "pipal"])
    assert {e.display: t.name for e, t in trained_entries(name)} == trained
    assert {e.display for e in suite.models if e.released} == released
    assert all("not retrained" in e.released for e in suite.models if e.released)
    untrained = {e.display for e in suite.models if not e.train and not e.released}
    assert untrained <= {"NIQE", "BRISQUE"}  # handcrafted
    presets = {e.display: e.trainer_options.get("preset") for e in suite.models if e.trainer == "grpo" or
               (e.train and e.name == "q-insight")}
    assert presets == {"VisualQuality-R1": "visualquality-r1", "Q-Insight": "q-insight"}
    # the Q-Insight family reads KonIQ's 512x384 images (their prompts must fit 1,024 tokens), with the source
    for entry in suite.models:
        if entry.name in ("q-insight", "ract"):
            assert entry.inputs["koniq10k"].options == {"resolution": "512x384"} and entry.inputs["koniq10k"].source


def test_released_checkpoint_suites_are_named_as_such():
    for name in ("single_domain_koniq_released.yaml", "cross_domain_released.yaml"):
        suite, _ = load_suite(SUITES / name)
        assert suite.name.endswith("_released")
        assert all(e.released for e in suite.models if e.name in ("q-align", "visualquality-r1", "q-insight"))
