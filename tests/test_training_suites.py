"""The bundled suites train what the paper trained: options that exist, and the published settings."""

from pathlib import Path

import pytest
import yaml

from iqabench.registry.options import check_options
from iqabench.registry.discovery import default_registry
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
    assert {"cross_domain.yaml", "ablation_ract.yaml", "smoke_mllm.yaml", "single_domain_koniq.yaml"} <= set(TRAINING_SUITES)


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
