"""Cost measurements that can be trusted: latency, peak memory, parameters.

Used by suites (one efficiency row per model) and by ``iqabench bench`` (the
side-by-side study): there is no second way to time a model.

Latency is the model's own time per image at a given batch size: inputs are
decoded and prepared beforehand, warm-up calls are excluded, the device is
synchronised around every call, and the median over repeats is reported.
End-to-end throughput adds decoding in worker processes; stage times split
the forward pass where the model declares stages.

Peak memory on CUDA is ``torch.cuda.max_memory_allocated`` after a reset. On
CPU torch keeps no allocator statistics (``torch.cuda.*`` silently reads 0),
so the peak resident set size of the process is used: Linux's ``VmHWM``,
which writing ``5`` to ``/proc/self/clear_refs`` resets, so each phase gets its
own peak. Where that is unavailable, a sampling thread reads the RSS.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from iqabench.contracts.model import Model
from iqabench.lazy import lazy_module

# torch is imported by the models that use it; a CPU model's run (NIQE) never loads it
torch = lazy_module("torch")


def device_name(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU ({compute_threads()} threads)"


def compute_threads() -> int:
    """torch's intra-op threads where torch is loaded (its models use them), else the cores this process may use."""
    return torch.get_num_threads() if "torch" in sys.modules else cpu_count()


def _read_vmhwm() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_vmhwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak on a GPU, peak RSS on CPU.

    Use as a context manager; ``peak_bytes`` and ``method`` are set on exit.
    """

    def __init__(self, device: str) -> None:
        self.cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        self.device = device
        self.peak_bytes: int | None = None
        self.baseline_bytes: int | None = None
        self.method = ""
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
        elif _reset_vmhwm() and _read_vmhwm() is not None:
            self.baseline_bytes = psutil.Process().memory_info().rss
            self.method = "peak RSS (VmHWM, reset per phase)"
        else:
            self.baseline_bytes = psutil.Process().memory_info().rss
            self.method = "peak RSS (sampled every 5 ms)"
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self._sampled = max(self._sampled, process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is None:
            self.peak_bytes = _read_vmhwm()
        else:
            self._stop.set()
            self._sampler.join()
            self.peak_bytes = self._sampled


@dataclass
class Efficiency:
    """What one model costs, with the conditions it was measured under."""

    parameters: int
    batch_size: int
    ms_per_image: float
    images_per_second: float
    ms_per_batch_runs: list[float]
    peak_memory_mib: float | None
    baseline_memory_mib: float | None
    memory_method: str
    device: str
    device_name: str
    dtype: str
    input_resolution: str
    torch_threads: int
    end_to_end_images_per_second: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_batches(run: Callable[[], Any], synchronize: Callable[[], None], *, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``run`` after ``warmup`` unmeasured calls."""
    for _ in range(warmup):
        run()
        synchronize()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure(
    model: Model, items: Sequence[Any], *, batch_size: int, warmup: int = 1, repeats: int = 5
) -> Efficiency:
    """Latency and peak memory of ``model.score_batch`` on prepared ``items`` at ``batch_size``.

    ``items`` are cycled to fill a batch when there are fewer than ``batch_size``; the batch is joined by the
    model's collator beforehand (the decode workers do that in a run).
    """
    if not items:
        raise ValueError("need at least one prepared image to measure efficiency")
    batch = model.collator()([items[i % len(items)] for i in range(batch_size)])
    with PeakMemory(model.device) as memory:
        times = time_batches(lambda: model.score_batch(batch), model.synchronize, warmup=warmup, repeats=repeats)
    median = statistics.median(times)
    mib = 1024 * 1024
    return Efficiency(
        parameters=int(model.num_parameters()),
        batch_size=batch_size,
        ms_per_image=1000.0 * median / batch_size,
        images_per_second=batch_size / median if median > 0 else float("inf"),
        ms_per_batch_runs=[1000.0 * t for t in times],
        peak_memory_mib=None if memory.peak_bytes is None else memory.peak_bytes / mib,
        baseline_memory_mib=None if memory.baseline_bytes is None else memory.baseline_bytes / mib,
        memory_method=memory.method,
        device=str(model.device),
        device_name=device_name(model.device),
        dtype=str(model.dtype),
        input_resolution=model.input_resolution(),
        torch_threads=compute_threads(),
    )


def stage_times(model: Model, batch: Sequence[Any], *, warmup: int, repeats: int) -> dict[str, float] | None:
    """Median ms per image of each of the model's declared stages, each fed the previous stage's output.

    ``None`` for a model that declares no stages (:meth:`Model.timing_stages`).
    """
    stages = model.timing_stages()
    if not stages:
        return None
    value: Any = torch.stack(list(batch))
    times = {}
    with torch.inference_mode():
        for stage, call in stages.items():
            output: dict[str, Any] = {}

            def run(call: Callable[[Any], Any] = call, inputs: Any = value, output: dict = output) -> None:
                output["value"] = call(inputs)

            runs = time_batches(run, model.synchronize, warmup=warmup, repeats=repeats)
            times[stage] = 1000.0 * statistics.median(runs) / len(batch)
            value = output["value"]
    return times


def end_to_end_throughput(model: Model, paths: Sequence[Any], *, batch_size: int, num_workers: int) -> float:
    """Images per second from image files to scores, decoding (and scoring, for a model that scores in the
    workers) in worker processes that overlap the model.

    The clock starts once the first batch is scored and only later batches count:
    worker start-up and the first batch's unoverlapped decode are one-offs, not
    per-image costs. With a single batch the whole loop is timed.
    """
    from iqabench.errors import IQABenchError
    from iqabench.scoring.loader import model_batches

    begin = time.perf_counter()
    count, start, batches, first = 0, None, 0, 0
    for batch in model_batches(model, paths, batch_size=batch_size, num_workers=num_workers):
        if batch.errors:
            raise IQABenchError(f"{len(batch.errors)} images failed to decode: {next(iter(batch.errors.values()))}")
        if batch.scores is None:
            model.score_batch(batch.inputs)
        batches += 1
        if start is None:
            model.synchronize()
            start, first = time.perf_counter(), batch.size
        else:
            count += batch.size
    model.synchronize()
    if batches == 1:
        return first / (time.perf_counter() - begin)
    return count / (time.perf_counter() - start)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parameters_on_meta(build: Callable[[], torch.nn.Module]) -> int:
    """Parameters of the module ``build()`` makes, built on the meta device: exact, with no memory or weights.

    For :meth:`Model.released_parameters`: a plugin counts its released architecture from its config alone.
    """
    with torch.device("meta"):
        module = build()
    return sum(parameter.numel() for parameter in module.parameters())
