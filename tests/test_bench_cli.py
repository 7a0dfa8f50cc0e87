"""`iqabench bench`: the efficiency study on tiny models, its suite schema, parameter counts and ratios."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image

from iqabench.cli import main
from iqabench.efficiency.bench import (
    BenchModel,
    BenchSettings,
    load_bench_suite,
    make_jpegs,
    measure_isolated,
    model_options,
    ratios,
)
from iqabench.errors import SuiteError
from tests.helpers import save_tiny_clip

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def vit_parameters(hidden: int, mlp: int, layers: int, patch: int, image: int, projection: int) -> int:
    """CLIP vision tower + projection, counted by hand from its layer shapes."""
    tokens = (image // patch) ** 2 + 1
    embeddings = 3 * patch * patch * hidden + hidden + tokens * hidden  # conv (no bias), class token, positions
    layer = 4 * (hidden * hidden + hidden) + 2 * 2 * hidden + (hidden * mlp + mlp) + (mlp * hidden + hidden)
    return embeddings + 2 * hidden + layers * layer + 2 * hidden + hidden * projection


def qwen25vl_7b_parameters() -> int:
    """Qwen2.5-VL-7B by hand: untied embeddings, GQA with q/k/v biases, SwiGLU; windowed ViT with biases, merger."""
    vocab, hidden, mlp, layers, kv = 152064, 3584, 18944, 28, 4 * 128
    text = 2 * vocab * hidden + layers * (
        (hidden * hidden + hidden) + 2 * (hidden * kv + kv) + hidden * hidden + 3 * hidden * mlp + 2 * hidden
    ) + hidden
    width, vmlp, depth = 1280, 3420, 32
    block = 2 * width + (width * 3 * width + 3 * width) + (width * width + width) + 2 * (width * vmlp + vmlp) + (
        vmlp * width + width)
    merger = width + (4 * width * 4 * width + 4 * width) + (4 * width * hidden + hidden)
    return text + 3 * 2 * 14 * 14 * width + depth * block + merger


def tiny_suite(tmp_path: Path, tiny_clip: Path) -> Path:
    suite = yaml.safe_load((REPO / "suites" / "efficiency.yaml").read_text())
    suite["models"][0]["options"]["backbone"] = str(tiny_clip)
    path = tmp_path / "efficiency.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.mark.slow
def test_bench_command_on_tiny_models(tmp_path, tiny_clip, monkeypatch):
    # the run's folder is the working folder and the tiny CLIP lives under the home folder: neither may be recorded
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tiny_clip.parent))
    out, report_path = tmp_path / "efficiency.md", tmp_path / "efficiency.json"
    code = main(["bench", "--suite", str(tiny_suite(tmp_path, tiny_clip)), "--device", "cpu", "--dtype", "float32",
                 "--batch-sizes", "1,2", "--new-tokens", "3", "--images", "2", "--warmup", "0", "--repeats", "1",
                 "--num-workers", "0", "--image-dir", str(tmp_path / "jpegs"), "--out", str(out),
                 "--json", str(report_path), "--no-isolate"])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["provenance"]["command"] == (
        "iqabench bench --suite efficiency.yaml --batch-sizes 1,2 --new-tokens 3 --device cpu --dtype float32 "
        "--images 2 --warmup 0 --repeats 1"
        " --num-workers 0 --out efficiency.md --json efficiency.json --no-isolate")
    assert report["models"][0]["options"]["backbone"] == f"~/{tiny_clip.name}"
    for text in (out.read_text(), report_path.read_text()):
        assert str(tmp_path) not in text and str(tiny_clip) not in text
    rali, qinsight = report["models"]
    assert [r["batch_size"] for r in rali["rows"]] == [1, 2] == [r["batch_size"] for r in qinsight["rows"]]
    assert all(r["error"] is None for m in report["models"] for r in m["rows"])

    # RALI's parameters: the tiny vision tower + projection by hand, plus the six head tensors (D=16, M=16, K=250)
    head = 16 + 16 + 16 * 16 + 250 * 16 + 250 + 1
    assert rali["parameters"] == vit_parameters(32, 64, 2, 8, 32, 16) + head
    assert rali["released_parameters"] == vit_parameters(1024, 4096, 24, 14, 336, 768) == 304_293_888
    assert rali["random_weights"] and qinsight["random_weights"]
    assert rali["real_size"] is False and qinsight["real_size"] is False  # tiny stand-ins, and the table says so
    assert "28" in qinsight["input_resolution"] and "12845056" in qinsight["input_resolution"]
    for row in qinsight["rows"]:  # min_new_tokens = max_new_tokens: exactly the asked count, no early EOS
        assert row["new_tokens_per_image"] == 3
    for row in rali["rows"]:
        assert set(row["stage_ms_per_image"]) == {"encoder", "head"}

    # ratios by hand from the measurements
    by_batch = {r["batch_size"]: r for r in report["ratios"]}
    for rali_row, q_row in zip(rali["rows"], qinsight["rows"]):
        ratio = by_batch[rali_row["batch_size"]]
        assert ratio["time"] == pytest.approx(rali_row["ms_per_image"] / q_row["ms_per_image"])
        assert ratio["memory"] == pytest.approx(rali_row["peak_memory_mib"] / q_row["peak_memory_mib"])
        assert ratio["end_to_end_time"] == pytest.approx(
            q_row["end_to_end_images_per_second"] / rali_row["end_to_end_images_per_second"])
        assert ratio["parameters"] == pytest.approx(rali["parameters"] / qinsight["parameters"])
        assert ratio["released_parameters"] == pytest.approx(304_293_888 / qwen25vl_7b_parameters())
        assert ratio["comparable"] is False

    markdown = out.read_text()
    sections = {part.split("\n", 1)[0]: part for part in markdown.split("\n## ")}

    def rows(title: str) -> list[str]:
        return [line for line in sections[title].splitlines() if line.startswith(("| RALI", "| Q-Insight"))]

    assert len(rows("Models")) == 2
    assert len(rows("Cost per batch size")) == 4  # 2 models x 2 batch sizes
    assert len(rows("Ratios vs Q-Insight (Qwen2.5-VL-7B)")) == 2
    assert len(rows("Where the time goes (serial cost per image)")) == 2
    assert "| model " in markdown and "ms/image" in markdown and "peak memory (MiB)" in markdown
    assert f"{100 * by_batch[2]['time']:.2f}%" in markdown
    assert "3.67%" in markdown  # 304.3M / 8292.2M, the released configurations
    assert "no GPU numbers" in markdown and "--no-isolate" in markdown
    assert "](efficiency.png)" in markdown and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_released_qwen25vl_7b_parameters_match_the_hand_count():
    from iqabench.registry.discovery import default_registry

    for name in ("q-insight", "visualquality-r1", "ract"):
        assert default_registry().model(name).released_parameters() == qwen25vl_7b_parameters() == 8_292_166_656


@pytest.mark.slow
def test_a_model_that_cannot_be_built_is_recorded_and_the_run_goes_on(tmp_path, tiny_clip):
    out, report_path = tmp_path / "e.md", tmp_path / "e.json"
    code = main(["bench", "--suite", str(tiny_suite(tmp_path, tiny_clip)), "--models", "rali,q-insight",
                 "-o", "q-insight:checkpoint=" + str(tmp_path / "no-such-checkpoint"), "--device", "cpu",
                 "--dtype", "float32", "--batch-sizes", "1", "--images", "1", "--warmup", "0", "--repeats", "1",
                 "--num-workers", "0", "--out", str(out), "--json", str(report_path), "--no-isolate"])
    assert code == 1
    rali, qinsight = json.loads(report_path.read_text())["models"]
    assert rali["error"] is None and rali["rows"][0]["ms_per_image"] > 0
    assert "CheckpointError" in qinsight["error"] and "no-such-checkpoint" in qinsight["error"]
    assert "CheckpointError" in out.read_text()


@pytest.mark.slow
def test_isolated_measurement_reports_a_failure_from_its_own_process(tmp_path):
    spec = BenchModel(name="rali", options={"random_init": False})  # no checkpoint: RALI refuses to build
    settings = BenchSettings(batch_sizes=(1,), device="cpu", dtype="float32", images=1, warmup=0, repeats=1)
    record = measure_isolated(spec, settings, make_jpegs(tmp_path, 1, (64, 48)))
    assert record["rows"] == [] and "rali needs a fitted checkpoint" in record["error"]


def test_generated_jpegs_are_deterministic_decodable_and_of_the_asked_size(tmp_path):
    first = make_jpegs(tmp_path / "a", 3, (512, 384))
    second = make_jpegs(tmp_path / "b", 3, (512, 384))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert len({p.read_bytes() for p in first}) == 3
    with Image.open(first[0]) as image:
        assert image.format == "JPEG" and image.size == (512, 384)


def test_cpu_section_applies_on_cpu_only_and_the_command_line_wins():
    suite = load_bench_suite(REPO / "suites" / "efficiency.yaml")
    gpu, cpu = suite.resolve("cuda", {}), suite.resolve("cpu", {})
    assert gpu.batch_sizes == (1, 4, 16, 64) and gpu.new_tokens == 256 and gpu.image_size == (512, 384)
    assert cpu.batch_sizes == (1, 4) and cpu.new_tokens == 16
    assert suite.resolve("cpu", {"batch_sizes": [2], "new_tokens": 5}).batch_sizes == (2,)
    qinsight = next(m for m in suite.models if m.name == "q-insight")
    assert model_options(qinsight, gpu) == {"random_init": True, "max_new_tokens": 256, "min_new_tokens": 256}
    assert model_options(qinsight, cpu) == {"random_init": False, "checkpoint": "tiny-random",
                                            "max_new_tokens": 16, "min_new_tokens": 16}


@pytest.mark.parametrize(
    "text, message",
    [
        ("models: [{name: rali}]\nbatchsizes: [1]\n",
         "field `batchsizes` is not a efficiency suite field. Did you mean 'batch_sizes'?"),
        ("models: [{name: rali, option: {}}]\n",
         "field `models.0.option` is not a efficiency suite field. Did you mean 'options'?"),
        ("cpu: {tokens: 3}\nmodels: [{name: rali}]\n", "field `cpu.tokens` is not a efficiency suite field"),
        ("models: []\n", "field `models`: List should have at least 1 item"),
        ("batch_sizes: [0]\nmodels: [{name: rali}]\n", "batch sizes must be positive integers"),
    ],
)
def test_suite_schema_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_bench_suite(path)


def test_what_a_model_contributes_to_the_study_is_declared_by_the_model_not_the_suite(tiny_clip):
    # the suite names no stages, token options or architectures: any registered model can be studied
    suite = yaml.safe_load((REPO / "suites" / "efficiency.yaml").read_text())
    assert all(set(model) <= {"name", "label", "options", "cpu_options", "images"} for model in suite["models"])
    from iqabench.registry.factory import build_model

    rali = build_model("rali", random_init=True, encoder="hf-clip", backbone=str(tiny_clip))
    assert list(rali.timing_stages()) == ["encoder", "head"] and rali.traits.random_weights


def test_ratios_divide_by_the_baseline_at_each_shared_batch_size():
    def record(label, params, rows, released=None):
        return {"model": label, "label": label, "parameters": params, "released_parameters": released,
                "real_size": None, "error": None, "rows": rows}

    def row(b, ms, mib, e2e):
        return {"batch_size": b, "ms_per_image": ms, "peak_memory_mib": mib, "end_to_end_images_per_second": e2e,
                "error": None}
    base = record("base", 1000, [row(1, 50.0, 800.0, 10.0), row(4, 40.0, 1000.0, 20.0)])
    fast = record("fast", 40, [row(1, 2.0, 100.0, 400.0), row(8, 1.0, 90.0, 500.0)])
    (only,) = ratios([fast, base], "base")  # batch 8 has no baseline row, batch 4 no model row
    assert only["batch_size"] == 1
    assert only["time"] == pytest.approx(0.04) and only["memory"] == pytest.approx(0.125)
    assert only["end_to_end_time"] == pytest.approx(10.0 / 400.0) and only["parameters"] == pytest.approx(0.04)
    assert ratios([fast], "base") == []


def test_recorded_text_drops_the_working_and_home_folders_only_where_a_path_starts(tmp_path, monkeypatch):
    from iqabench.commands.bench import _portable_text

    home, work = tmp_path / "home", tmp_path / "home" / "repo"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    text = f'--suite {work}/s.yaml -o rali:backbone={home}/clip File "{home}/x.py" /other{home}/y'
    assert _portable_text(text) == f'--suite s.yaml -o rali:backbone=~/clip File "~/x.py" /other{home}/y'
