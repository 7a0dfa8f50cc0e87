"""The GPU acceptance script (benchmarks/gpu_acceptance.sh): its dry run on the CPU, so the script cannot rot while
no GPU is at hand, and the parts that decide what a real run does (pins, wheels, time limits, the report)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import psutil
import pytest

from benchmarks import gpu_acceptance
from benchmarks.gpu_acceptance import STEPS, machine_constraints, render_markdown, wheel_list
from benchmarks.gpu_acceptance_steps import (
    NOT_SCORED,
    SCORED_MODELS,
    TRACED_BF16_CHECKPOINTED_MIB,
    TRACED_FP32_MIB,
)

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_acceptance.sh"


def vllm_importable() -> bool:
    from importlib.util import find_spec

    return find_spec("vllm") is not None


@pytest.mark.slow
def test_the_dry_run_runs_every_step_on_the_cpu_and_writes_one_report(tmp_path):
    report, work = tmp_path / "report", tmp_path / "work"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), "run", "--dry-run", "--out", str(report), "--work", str(work)],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((report / "report.json").read_text())
    steps = {record["name"]: record for record in result["steps"]}
    assert list(steps) == [spec.name for spec in STEPS]
    expected = {"bench": "PASS", "throughput": "PASS", "cuda": "PASS", "accelerate": "PASS",
                "vllm": "PASS" if vllm_importable() else "SKIP"}
    assert {name: record["status"] for name, record in steps.items()} == expected
    for name, record in steps.items():
        if record["status"] == "PASS":
            assert record["checks"] and all(check["ok"] for check in record["checks"]), name
    if expected["vllm"] == "SKIP":
        assert "vllm" in steps["vllm"]["reason"]
    # one line per step in the console and in the report, with its status and time limit
    for spec in STEPS:
        assert re.search(rf"^{expected[spec.name]}\s+{spec.name}\s+[\d.]+ s of {spec.dry_limit} s", done.stdout,
                         re.MULTILINE), done.stdout
    markdown = (report / "report.md").read_text()
    assert markdown.startswith("# GPU acceptance: dry run on the CPU")
    for spec in STEPS:
        assert f"| {spec.title} | **{expected[spec.name]}** |" in markdown
    # what a device call brings back: at most 8 files, none in a sub-folder
    files = sorted(p.name for p in report.iterdir())
    assert files == sorted(gpu_acceptance.REPORT_FILES) and len(files) <= 8
    assert (report / "acceptance.png").read_bytes()[:4] == b"\x89PNG"
    # step 1 is `iqabench bench` with the suite it ran beside its report; the targets are recorded, not judged
    bench = json.loads((report / "efficiency.json").read_text())
    assert [[r["batch_size"] for r in m["rows"]] for m in bench["models"]] == [[1, 2], [1, 2]]
    assert "efficiency-suite.yaml" in bench["provenance"]["command"]
    targets = [t for record in result["steps"] for t in record["targets"]]
    assert len(targets) == 3 and all(t["met"] is None and t["value"] is not None for t in targets)
    # step 3 compared every model family and the gradient of every differentiable one
    checks = " ".join(c["check"] for c in steps["cuda"]["checks"])
    for name in SCORED_MODELS:
        assert f"{name}: scores on cpu match the CPU's" in checks
    for name in ("clip-iqa", "clip-iqa+", "q-align", "rali"):
        assert f"{name}: gradient on cpu" in checks
    losses = steps["cuda"]["data"]["alignment"]["bf16_checkpointed_losses"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    # step 4 compared both models' prediction files
    assert sum("byte for byte" in c["check"] for c in steps["accelerate"]["checks"]) == 2


def test_a_gpu_machine_keeps_its_torch_build():
    packages = {"torch": "2.11.0+cu130", "torchvision": "0.26.0", "triton": "3.6.0", "nvidia-cublas": "13.1.0.3",
                "cuda-bindings": "13.0.3", "numpy": "2.5.2", "transformers": "5.17.0"}
    assert machine_constraints(packages) == ["cuda-bindings==13.0.3", "nvidia-cublas==13.1.0.3", "torch==2.11.0+cu130",
                                             "torchvision==0.26.0", "triton==3.6.0"]
    assert machine_constraints({"numpy": "2.5.2"}) == []  # no torch: constraints.txt applies


def test_the_wheels_to_carry_are_the_missing_requirements_and_theirs():
    have = set(gpu_acceptance.installed()) - {"open-clip-torch", "ftfy", "trl"}
    expected = {f"open-clip-torch=={version('open_clip_torch')}", f"ftfy=={version('ftfy')}", f"trl=={version('trl')}",
                f"setuptools=={version('setuptools')}"}  # ftfy's wcwidth and trl's datasets are there
    assert set(wheel_list(have)) == expected


def test_every_built_in_model_is_scored_on_the_device_or_says_why_not():
    from iqabench.registry.discovery import default_registry

    built_in = {entry.name for entry in default_registry().entries("model") if entry.distribution == "iqabench"}
    assert built_in == set(SCORED_MODELS) | set(NOT_SCORED)


def test_the_memory_estimates_are_those_of_docs_rali():
    table = (REPO / "docs" / "rali.md").read_text()
    assert re.search(rf"^\| fp32 \| no \| 32 \| {TRACED_FP32_MIB:,} \|", table, re.MULTILINE)
    assert re.search(rf"^\| \*\*bf16 \(default on CUDA\)\*\* \| \*\*yes \(default on CUDA\)\*\* \| \*\*32\*\* \| "
                     rf"\*\*{TRACED_BF16_CHECKPOINTED_MIB:,}\*\* \|", table, re.MULTILINE)


def test_a_step_past_its_time_limit_fails_and_no_time_left_skips(tmp_path):
    args = argparse.Namespace(dry_run=True, install_record=None)
    record = gpu_acceptance.launch_step(STEPS[0], 1, args, tmp_path / "work", tmp_path / "report")
    assert record["status"] == "FAIL" and record["reason"] == "ran past its time limit of 1 s"
    assert record["seconds"] < 30
    # the step and the `iqabench bench` it had started are gone
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]

    assert gpu_acceptance.main(["--dry-run", "--budget", "0", "--out", str(tmp_path / "r"),
                                "--work", str(tmp_path / "w")]) == 0
    result = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["status"] for r in result["steps"]] == ["SKIP"] * len(STEPS)
    assert all(r["reason"] == "no time left in the run's 0.0 s budget" for r in result["steps"])


def test_a_failed_step_shows_its_checks_and_the_end_of_its_log():
    result = {"dry_run": False, "command": "benchmarks/gpu_acceptance.py --out x", "seconds": 100.0,
              "budget_seconds": 480, "install": {"seconds": 42, "mode": "offline", "vllm": {"status": "not installed"}},
              "machine": {"gpus": ["NVIDIA H100 80GB HBM3"], "driver": "580", "cpu_cores": 16, "python": "3.12.3",
                          "torch": "2.11.0+cu130", "cuda": "13.0", "versions": {"torch": "2.11.0+cu130"}},
              "steps": [{"name": "throughput", "title": "2. throughput", "status": "FAIL", "seconds": 12.5,
                         "limit": 90, "reason": "every image of a batch gets a finite score",
                         "checks": [{"check": "every image of a batch gets a finite score", "ok": False,
                                     "detail": "3 of 64 failed"}],
                         "targets": [{"target": "RALI end to end", "value": 640.0, "limit": 1000.0, "at_most": False,
                                      "unit": "images/s", "met": False}],
                         "tables": [], "log_tail": "Traceback: boom"}]}
    markdown = render_markdown(result)
    assert "| 2. throughput | **FAIL** | 12.5 | 90 | every image of a batch gets a finite score |" in markdown
    assert "- **FAIL**: every image of a batch gets a finite score (3 of 64 failed)" in markdown
    assert "| throughput | RALI end to end | 640.0 images/s | >= 1,000 images/s | **not met** |" in markdown
    assert "Install (`benchmarks/gpu_acceptance.sh install`, a call of its own): 42 s" in markdown
    assert "```\nTraceback: boom\n```" in markdown


def test_the_script_without_an_action_prints_its_usage():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "benchmarks/gpu_acceptance.sh install" in done.stderr
