"""Speed of the harness around the models (issue 16): one benchmark per row of its table.

Run (the machine is shared: compare the ratios in ``extra_info``, measured side by side in one run):

    HF_HUB_OFFLINE=1 python -m pytest benchmarks/bench_harness.py --benchmark-enable
    IQABENCH_BENCH_IMAGES=1000 ... (the suite rows; 300 by default)

The one-thread rows are in ``bench_niqe_brisque.py`` (run them under ``OMP_NUM_THREADS=1 taskset -c 0``).
``benchmarks/README.md`` has the last measured ratios.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import iqabench  # noqa: F401  (the torchvision shim waits for torchvision)
from iqabench.efficiency.bench import make_jpegs
from iqabench.efficiency.measure import cpu_count
from iqabench.scoring.engine import score_files
from iqabench.scoring.images import ImageReading, load_image
from iqabench.scoring.loader import model_batches

IMAGES = int(os.environ.get("IQABENCH_BENCH_IMAGES", "300"))
#: NIQE's kernel in the suite row: auto (numba when installed), numba or numpy (the model the issue measured)
NIQE_KERNEL = os.environ.get("IQABENCH_BENCH_NIQE_KERNEL", "auto")
SIZE = (1024, 768)


def _timed_once(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[Path]:
    return make_jpegs(tmp_path_factory.mktemp("jpegs"), IMAGES, SIZE)


def _timed(benchmark, function, *, rounds: int = 1):
    """``benchmark.pedantic(function)``, also timing each call here, so the ratios in ``extra_info`` exist with
    ``--benchmark-disable`` too (one call, as the CI smoke run makes). Returns (last result, median seconds)."""
    seconds = []

    def call():
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
        return result

    result = benchmark.pedantic(call, rounds=rounds, iterations=1)
    return result, float(np.median(seconds))


def _model_seconds(model, paths) -> float:
    """The pure single-process model time: ``score_batch`` alone on prepared images (decode excluded)."""
    prepared = [model.preprocessor()(load_image(path)) for path in paths[:16]]
    model.score_batch(model.collator()(prepared[:1]))
    start = time.perf_counter()
    for item in prepared:
        model.score_batch(model.collator()([item]))
    return (time.perf_counter() - start) / len(prepared) * len(paths)


def _deqa_folder(root: Path, paths: list[Path]) -> Path:
    (root / "metas").mkdir(parents=True, exist_ok=True)
    records = [{"image": str(path), "gt_score": float(index % 5 + 1)} for index, path in enumerate(paths)]
    (root / "metas" / "test_bench.json").write_text(json.dumps(records))
    return root


def test_niqe_suite_wall_over_model_time(benchmark, jpegs, tmp_path):
    """Row 1: `iqabench run` of a NIQE suite (a fresh process: start-up, planning, scoring in the decode
    workers, efficiency, results, leaderboard and figures) over the pure single-process model time."""
    from iqabench_plugins.niqe import NIQE

    data = _deqa_folder(tmp_path / "data", jpegs)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: harness\nprotocol: single_domain\nseed: 0\ndevice: cpu\nbatch_size: 8\n"
        f"num_workers: {cpu_count()}\ncorrelation: none\nbootstrap: 100\n"
        f"test:\n  - {{dataset: deqa-meta, root: {data}, options: {{meta: metas/test_bench.json, "
        "rescale_range: [1, 5], allow_outside_root: true}}\n"
        f"models:\n  - {{name: niqe, label: NIQE, options: {{kernel: {NIQE_KERNEL}}}}}\n"
    )
    def run() -> None:
        subprocess.run([sys.executable, "-m", "iqabench", "run", str(suite), "--out", str(tmp_path / "run"),
                        "--no-progress"], check=True, capture_output=True)

    _, wall = _timed(benchmark, run)
    model = _model_seconds(NIQE(kernel=NIQE_KERNEL), jpegs)
    benchmark.extra_info.update(images=len(jpegs), workers=cpu_count(), wall_s=wall, model_s=model,
                                wall_over_model=wall / model, kernel=NIQE(kernel=NIQE_KERNEL).computes_with)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_niqe_inside_a_run_vs_outside(benchmark, jpegs, workers):
    """Rows 2 and 3: NIQE ms/image through `score_files` (decode, and scoring in the workers when there are
    any) against the model alone; minor page faults of the main process and of the workers per image."""
    from iqabench_plugins.niqe import NIQE

    model = NIQE()
    paths = jpegs[: min(len(jpegs), 120)]
    list(score_files(model, paths[:8], batch_size=8, num_workers=workers))  # start-up and imports out of the way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt

    def run() -> int:
        return sum(len(batch) for batch in score_files(model, paths, batch_size=8, num_workers=workers))

    count, seconds = _timed(benchmark, run)
    assert count == len(paths)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    inside = seconds / len(paths)
    alone = _model_seconds(model, paths) / len(paths)
    benchmark.extra_info.update(
        workers=workers, ms_per_image_inside=1000 * inside, ms_per_image_model_alone=1000 * alone,
        speedup_over_one_core=alone / inside, main_faults_per_image=(after[0] - before[0]) / len(paths),
        worker_faults_per_image=(after[1] - before[1]) / len(paths),
    )


@pytest.mark.parametrize("draft", [False, True], ids=["full-decode", "jpeg-draft"])
def test_rali_preprocessing_per_core(benchmark, jpegs, draft):
    """Row 4: decode + resize + crop of a 1024x768 JPEG to RALI's uint8 336x336 input, one core, and the main
    process's share per image (receiving a stacked batch from a worker and normalising it, on the CPU here)."""
    import torch

    from iqabench_plugins.rali.encoders import (
        OPENAI_CLIP_MEAN,
        OPENAI_CLIP_STD,
        HFImageTransform,
        clip_image_processor_class,
        normalise_pixels,
        stack_pixels,
    )

    transform = HFImageTransform(clip_image_processor_class()(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
        image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD)))
    pixels, table = transform.pixels(), torch.from_numpy(transform.table())
    reading = ImageReading(jpeg_draft=draft)
    paths = jpegs[:32]

    def prepare() -> list:
        return [pixels(load_image(path, reading, draft_size=(336, 336))) for path in paths]

    items, seconds = _timed(benchmark, prepare, rounds=3)
    assert items[0].shape == (3, 336, 336) and items[0].dtype == torch.uint8
    per_image = seconds / len(paths)
    batch = stack_pixels(items)
    start = time.perf_counter()
    for _ in range(5):
        normalise_pixels(batch, table, torch.bfloat16)
    normalise_ms = 1000 * (time.perf_counter() - start) / 5 / len(items)
    reference = [transform(load_image(path)) for path in paths[:8]]
    # the same images through Pillow's decode alone, and through the previous worker path (the CLIP processor's
    # float32 output, normalised in the worker): what the split and the draft decoding gain, same run
    decode = _timed_once(lambda: [load_image(path, reading, draft_size=(336, 336)) for path in paths])
    decode_ms = 1000 * decode / len(paths)
    processor_ms = 1000 * _timed_once(lambda: [transform(load_image(path)) for path in paths]) / len(paths)
    exact = all(torch.equal(normalise_pixels(item[None], table, torch.float32)[0], ref)
                for item, ref in zip(items[:8], reference, strict=True))
    from iqabench.scoring.images import image_backend

    benchmark.extra_info.update(backend=image_backend(), ms_per_image=1000 * per_image,
                                images_per_second_per_core=1 / per_image,
                                cores_for_1000_per_second=1000 * per_image,
                                cpu_normalise_ms_per_image=normalise_ms, bit_exact_with_reference=exact,
                                decode_only_ms_per_image=decode_ms, processor_path_ms_per_image=processor_ms)


def test_main_process_share_per_image(benchmark, jpegs):
    """Row 4, main process: what receiving a stacked uint8 batch from a decode worker costs per image."""
    import torch

    from iqabench_plugins.rali.encoders import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ResizeCropNormalize

    class Pixels:  # a stand-in model with RALI's uint8 preprocessor and collator, no network
        device, score_in_workers = "cpu", False

        def preprocessor(self):
            return ResizeCropNormalize(336, 336, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD).pixels()

        def collator(self):
            from iqabench_plugins.rali.encoders import stack_pixels

            return stack_pixels

        def decode_size(self):
            return (336, 336)

    paths = jpegs[:64]
    workers = max(1, cpu_count() - 1)
    list(model_batches(Pixels(), paths[:16], batch_size=16, num_workers=workers))

    def receive() -> float:
        before = time.process_time()
        count = sum(batch.inputs.shape[0] for batch in model_batches(Pixels(), paths, batch_size=16,
                                                                     num_workers=workers))
        assert count == len(paths)
        return time.process_time() - before

    main_cpu, _ = _timed(benchmark, receive)
    benchmark.extra_info.update(main_process_cpu_ms_per_image=1000 * main_cpu / len(paths), workers=workers,
                                torch_threads=torch.get_num_threads())


@pytest.mark.parametrize("command", [["--help"], ["list", "models"]], ids=["help", "list-models"])
def test_command_start_up(benchmark, command):
    """Row 6: wall time of `iqabench --help` and `iqabench list models` in a fresh process, with
    `python -c "import numpy"` measured alongside as the yardstick."""
    def run(args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True)

    numpy = [_timed_once(run, [sys.executable, "-c", "import numpy"]) for _ in range(3)]
    _, wall = _timed(benchmark, lambda: run([sys.executable, "-m", "iqabench", *command]), rounds=3)
    benchmark.extra_info.update(numpy_import_s=float(np.median(numpy)), seconds=wall,
                                over_numpy_import=wall / float(np.median(numpy)))


def test_score_one_image_start_up(benchmark, jpegs):
    """Row 6: `iqabench score niqe one.jpg` in a fresh process (import, model, one score), with the default
    kernel (numba where installed) and with the NumPy one."""
    def run(kernel: str) -> None:
        subprocess.run([sys.executable, "-m", "iqabench", "score", "niqe", str(jpegs[0]), "-o", f"kernel={kernel}"],
                       check=True, capture_output=True)

    _, auto = _timed(benchmark, lambda: run("auto"), rounds=3)  # numba where installed: its import and cache load
    numpy = float(np.median([_timed_once(run, "numpy") for _ in range(3)]))
    benchmark.extra_info.update(kernel_auto_s=auto, kernel_numpy_s=numpy)
