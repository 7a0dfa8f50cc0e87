"""The efficiency study (paper section 5.4, Figure 6): models' cost side by side, in one run.

``iqabench bench`` measures every model of an efficiency suite on the same
generated JPEGs, at several batch sizes, and divides each by a baseline model
(Q-Insight in ``suites/efficiency.yaml``). Models are built with
:func:`iqabench.registry.factory.build_model` and measured with
:mod:`iqabench.efficiency.measure`, exactly as suites build and measure them; what a
model contributes beyond its scores (random weights, generated tokens, its
forward pass as stages, the parameter count of its release) it declares on
:class:`iqabench.contracts.model.Model`, so the study works for any registered model.

Each model runs in its own spawned process by default, so one model's memory
never inflates the next one's peak and an out-of-memory kill is recorded as a
failure, not a crash.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from iqabench.errors import IQABenchError
from iqabench.run.suite import field_names, load_validated

log = logging.getLogger(__name__)

#: a model is "at real size" when its measured parameter count is within this fraction of its released architecture
REAL_SIZE_TOLERANCE = 0.05


def parse_image_size(value: Any) -> tuple[int, int]:
    """``"512x384"`` or ``[512, 384]`` -> (width, height)."""
    try:
        width, height = (int(v) for v in (value.lower().split("x") if isinstance(value, str) else value))
    except (ValueError, TypeError, AttributeError):
        raise IQABenchError(f"image size {value!r} is not WIDTHxHEIGHT, e.g. 512x384.") from None
    if width < 1 or height < 1:
        raise IQABenchError(f"image size {value!r} must be positive.")
    return width, height


# ----------------------------------------------------------------------------------------------- the suite


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BenchConditions(_Strict):
    """The measuring conditions a suite may set (for GPUs at the top level, overridden under ``cpu:``)."""

    batch_sizes: list[int] | None = Field(default=None, min_length=1)
    new_tokens: int | None = Field(default=None, ge=1)
    image_size: str | list[int] | None = None
    images: int | None = Field(default=None, ge=1)
    warmup: int | None = Field(default=None, ge=0)
    repeats: int | None = Field(default=None, ge=1)
    num_workers: int | None = Field(default=None, ge=0)
    dtype: str | None = None

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and min(value) < 1:
            raise ValueError("batch sizes must be positive integers")
        return value


class BenchModel(_Strict):
    """One model of the comparison: a registered name and its options."""

    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: merged over ``options`` when the study runs on CPU (e.g. a tiny stand-in for a 7B model)
    cpu_options: dict[str, Any] = Field(default_factory=dict)
    #: at most this many images in the end-to-end pass (slow generative models)
    images: int | None = Field(default=None, ge=1)

    @property
    def display(self) -> str:
        return self.label or self.name


class BenchSuite(BenchConditions):
    """``suites/efficiency.yaml``: conditions, their ``cpu:`` overrides, the models and the baseline."""

    description: str = ""
    notes: str = ""
    #: the model every other one is divided by
    baseline: str | None = None
    #: what the paper reports, quoted in the output
    reference: str = ""
    #: the goals the run is judged against, quoted in the output
    targets: list[str] = Field(default_factory=list)
    cpu: BenchConditions = Field(default_factory=BenchConditions)
    models: list[BenchModel] = Field(min_length=1)

    def resolve(self, device: str, overrides: dict[str, Any]) -> BenchSettings:
        """Settings for ``device``: defaults, then the suite, then its ``cpu:`` section on CPU, then the CLI."""
        values = self.model_dump(include=set(BenchConditions.model_fields), exclude_none=True)
        if not device.startswith("cuda"):
            values.update(self.cpu.model_dump(exclude_none=True))
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["device"] = device
        if "batch_sizes" in values:
            values["batch_sizes"] = tuple(int(b) for b in values["batch_sizes"])
        if "image_size" in values:
            values["image_size"] = parse_image_size(values["image_size"])
        settings = BenchSettings(**values)
        if not settings.batch_sizes or min(settings.batch_sizes) < 1:
            raise IQABenchError(f"batch sizes must be positive integers, got {list(settings.batch_sizes)}.")
        if settings.repeats < 1 or settings.warmup < 0:
            raise IQABenchError(f"need repeats >= 1 and warmup >= 0, got repeats={settings.repeats}, "
                                f"warmup={settings.warmup}; e.g. --repeats 5 --warmup 2.")
        return settings


def load_bench_suite(path: str | Path) -> BenchSuite:
    """Read and validate an efficiency suite (schema in docs/efficiency.md)."""
    suite, _ = load_validated(path, BenchSuite, field_names(BenchSuite, BenchModel), "efficiency suite")
    return suite


@dataclass(frozen=True)
class BenchSettings:
    """The conditions of one run, resolved for its device; recorded in the output."""

    batch_sizes: tuple[int, ...] = (1, 4, 16, 64)
    new_tokens: int = 256
    image_size: tuple[int, int] = (512, 384)
    images: int = 1024
    warmup: int = 2
    repeats: int = 5
    num_workers: int | None = None
    device: str = "cuda"
    dtype: str = "bfloat16"

    @property
    def workers(self) -> int:
        """Decode workers: the setting, or all cores but one (the one that feeds the device)."""
        from iqabench.efficiency.measure import cpu_count

        return self.num_workers if self.num_workers is not None else max(1, cpu_count() - 1)


def model_options(entry: BenchModel, settings: BenchSettings, registry: Any = None) -> dict[str, Any]:
    """The options a model is built with: its own, its CPU ones on CPU, and the run's token count.

    Every option a generative model declares in ``new_tokens_options`` gets the
    run's ``new_tokens``, so each image costs the same number of tokens.
    """
    from iqabench.registry.discovery import default_registry

    options = dict(entry.options)
    if not settings.device.startswith("cuda"):
        options.update(entry.cpu_options)
    for name in (registry or default_registry()).model(entry.name).traits.new_tokens_options:
        options[name] = settings.new_tokens
    return options


# ----------------------------------------------------------------------------------------------- inputs


def make_jpegs(folder: str | Path, count: int, size: tuple[int, int], seed: int = 0, quality: int = 90) -> list[Path]:
    """``count`` deterministic photo-like JPEGs (smooth colour fields plus texture), so decoding costs what it does
    on real photographs; existing files of the right size are reused."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(count):
        path = folder / f"bench_{width}x{height}_{seed}_{index:05d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng((seed, index))
        fx, fy, phase = rng.uniform(0.005, 0.05, 3), rng.uniform(0.005, 0.05, 3), rng.uniform(0, 6.3, 3)
        channels = [np.sin(fx[c] * x + fy[c] * y + phase[c]) for c in range(3)]
        pixels = 127.5 + 80 * np.stack(channels, axis=-1) + rng.normal(0, 12, (height, width, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=quality)
    return paths


# ----------------------------------------------------------------------------------------------- measuring


def measure_model(entry: BenchModel, settings: BenchSettings, paths: Sequence[Path]) -> dict[str, Any]:
    """Everything measured for one model: per batch size rows, each possibly a recorded failure."""
    import psutil

    from iqabench.registry.factory import build_model
    from iqabench.scoring.loader import iterate_batches

    record: dict[str, Any] = {"model": entry.name, "label": entry.display, "rows": [], "error": None}
    record["rss_before_load_mib"] = psutil.Process().memory_info().rss / 2**20
    try:
        options = model_options(entry, settings)
        dtype = options.pop("dtype", settings.dtype)
        record["options"] = {**options, "dtype": dtype}
        start = time.perf_counter()
        model = build_model(entry.name, device=settings.device, dtype=dtype, **options)
        record["load_seconds"] = time.perf_counter() - start
        record.update(
            parameters=int(model.num_parameters()),
            released_parameters=type(model).released_parameters(),
            random_weights=model.traits.random_weights,
            input_resolution=model.input_resolution(),
            dtype=str(model.config().get("dtype", dtype)),
            config=model.config(),
        )
        start = time.perf_counter()
        items = [loaded.item for batch in iterate_batches(paths[: max(settings.batch_sizes)], model.preprocessor(),
                                                           batch_size=8, num_workers=0) for loaded in batch]
        record["decode_ms_per_image"] = 1000.0 * (time.perf_counter() - start) / len(items)
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
        return record
    for batch_size in settings.batch_sizes:
        record["rows"].append(_measure_batch_size(model, entry, items, paths, batch_size, settings))
    return record


def _measure_batch_size(model: Any, entry: BenchModel, items: list[Any], paths: Sequence[Path], batch_size: int,
                        settings: BenchSettings) -> dict[str, Any]:
    from iqabench.efficiency.measure import end_to_end_throughput, measure, stage_times

    row: dict[str, Any] = {"batch_size": batch_size, "error": None}
    try:
        tokens_before = model.generated_tokens
        result = measure(model, items, batch_size=batch_size, warmup=settings.warmup, repeats=settings.repeats)
        row.update(result.to_dict())
        if tokens_before is not None:
            calls = settings.warmup + settings.repeats
            row["new_tokens_per_image"] = (model.generated_tokens - tokens_before) / (calls * batch_size)
        batch = [items[i % len(items)] for i in range(batch_size)]
        row["stage_ms_per_image"] = stage_times(model, batch, warmup=settings.warmup, repeats=settings.repeats)
        images = max(min(entry.images or settings.images, settings.images), batch_size)
        row["end_to_end_images_per_second"] = end_to_end_throughput(
            model, [paths[i % len(paths)] for i in range(images)], batch_size=batch_size, num_workers=settings.workers)
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        log.warning("%s at batch size %d failed: %s", entry.display, batch_size, row["error"])
        gc.collect()
        _empty_cuda_cache()
    return row


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _child(entry: BenchModel, settings: BenchSettings, paths: list[Path], connection: Any) -> None:
    import iqabench  # noqa: F401  (the torchvision shim, before any plugin import)

    if "fork" in multiprocessing.get_all_start_methods():  # decode workers start as in a plain `iqabench` process
        multiprocessing.set_start_method("fork", force=True)
    connection.send(measure_model(entry, settings, paths))
    connection.close()


def measure_isolated(entry: BenchModel, settings: BenchSettings, paths: list[Path]) -> dict[str, Any]:
    """:func:`measure_model` in a fresh spawned process: clean peak memory, and survival of out-of-memory kills."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(entry, settings, paths, send), name=f"bench-{entry.name}")
    process.start()
    send.close()
    try:
        record = receive.recv()
    except EOFError:
        record = None
    process.join()
    if record is None:
        why = "killed (likely out of memory)" if process.exitcode and process.exitcode < 0 else "crashed"
        record = {"model": entry.name, "label": entry.display, "rows": [],
                  "error": f"measuring process {why}, exit code {process.exitcode}"}
    return record


# ----------------------------------------------------------------------------------------------- the run


def run_bench(suite: BenchSuite, settings: BenchSettings, image_dir: str | Path, *, isolate: bool = True,
              command: list[str] | None = None) -> dict[str, Any]:
    """Measure every model of ``suite`` under ``settings``; return the JSON-ready report."""
    import torch

    from iqabench.efficiency.measure import device_name
    from iqabench.provenance import cpu_description, run_provenance

    count = max(max(settings.batch_sizes), 8)
    paths = make_jpegs(image_dir, count, settings.image_size)
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "num_workers": settings.workers},
        "device_name": device_name(settings.device),
        "cpu": cpu_description(),
        "torch_threads": torch.get_num_threads(),
        "provenance": run_provenance(command),
        "baseline": suite.baseline,
        "reference": suite.reference,
        "targets": suite.targets,
        "models": [],
    }
    for entry in suite.models:
        log.info("bench: measuring %s", entry.display)
        record = measure_isolated(entry, settings, paths) if isolate else measure_model(entry, settings, paths)
        record["real_size"] = _real_size(record)
        report["models"].append(record)
        gc.collect()
    report["ratios"] = ratios(report["models"], suite.baseline)
    return report


def _real_size(record: dict[str, Any]) -> bool | None:
    released, measured = record.get("released_parameters"), record.get("parameters")
    if not released or measured is None:
        return None
    return abs(measured - released) <= REAL_SIZE_TOLERANCE * released


def ratios(models: list[dict[str, Any]], baseline: str | None) -> list[dict[str, Any]]:
    """Each model / the baseline at every batch size both measured: time, memory, parameters."""
    base = next((m for m in models if m["model"] == baseline and not m.get("error")), None)
    if base is None:
        return []
    base_rows = {r["batch_size"]: r for r in base["rows"] if not r.get("error")}
    out = []
    for record in models:
        if record is base or record.get("error"):
            continue
        for row in record["rows"]:
            other = base_rows.get(row["batch_size"])
            if row.get("error") or other is None:
                continue
            released = (record.get("released_parameters"), base.get("released_parameters"))
            out.append({
                "model": record["label"],
                "baseline": base["label"],
                "batch_size": row["batch_size"],
                "time": row["ms_per_image"] / other["ms_per_image"],
                "end_to_end_time": _ratio(other.get("end_to_end_images_per_second"),
                                          row.get("end_to_end_images_per_second")),
                "memory": _ratio(row.get("peak_memory_mib"), other.get("peak_memory_mib")),
                "parameters": _ratio(record.get("parameters"), base.get("parameters")),
                "released_parameters": _ratio(*released),
                "comparable": bool(record.get("real_size") is not False and base.get("real_size") is not False),
            })
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else numerator / denominator
