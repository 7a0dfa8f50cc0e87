"""Side-by-side cost of IQA models: time, throughput, peak memory, parameters (paper section 5.4, Figure 6).

``iqabench bench`` measures every requested model on the same generated
JPEGs, at several batch sizes, in one run, and compares each with a baseline
model (Q-Insight in ``suites/efficiency.yaml``). What is measured per model and
batch size:

* model time: :func:`iqabench.efficiency.measure` on decoded, prepared inputs
  (warm-up excluded, device synchronised, median of repeats);
* end-to-end throughput: JPEG files -> decode and prepare in DataLoader worker
  processes (pinned memory on CUDA) -> ``score_batch``, wall clock;
* peak memory of the timed phase (CUDA allocator peak, or the process's peak
  RSS on CPU) and the parameter count;
* optional stage timings: a model entry may name public methods that, chained,
  make up its forward pass (RALI: ``features`` then ``fused``), timed one by
  one, plus the serial decode cost, for the time-share breakdown;
* optional generated-token counts, for generative models whose cost scales
  with the number of new tokens.

The core knows nothing about specific plugins: which option sets the number of
new tokens, which methods are stages, the released architecture to count
parameters on, all come from the suite file as data. Each model runs in its own
spawned process by default, so one model's memory never inflates the next
one's peak and an out-of-memory kill is recorded as a failure, not a crash.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import statistics
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
import yaml
from PIL import Image

from iqabench.efficiency import cpu_count, device_name, measure, time_batches
from iqabench.errors import IQABenchError, SuiteError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SETTING_KEYS = ("batch_sizes", "new_tokens", "image_size", "images", "warmup", "repeats", "num_workers", "dtype")
MODEL_KEYS = ("name", "label", "options", "cpu_options", "new_tokens_option", "generated_tokens", "stages",
              "released_architecture", "images")
SUITE_KEYS = ("description", "notes", "baseline", "reference", "targets", "cpu", "models", *SETTING_KEYS)
#: a model is "at real size" when its measured parameter count is within this fraction of its released architecture
REAL_SIZE_TOLERANCE = 0.05


# ----------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class BenchSettings:
    """The conditions of one run; recorded in the output."""

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
        return self.num_workers if self.num_workers is not None else max(1, cpu_count() - 1)


@dataclass
class ModelSpec:
    """One model of the comparison, as the suite file describes it."""

    name: str
    label: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    cpu_options: dict[str, Any] = field(default_factory=dict)
    #: the model option(s) that receive the run's ``new_tokens`` (generative models; e.g. max and min new tokens)
    new_tokens_option: str | list[str] | None = None
    #: dotted attribute path of a running count of generated tokens, read before and after timing
    generated_tokens: str | None = None
    #: {"input": "stack", "calls": {stage name: method or attribute name}} for the time breakdown
    stages: dict[str, Any] | None = None
    #: {"config": "transformers.X", "model": "transformers.Y", "kwargs": {...}}: the released architecture
    released_architecture: dict[str, Any] | None = None
    #: at most this many images in the end-to-end pass (the run's ``images`` otherwise); slow generative models
    images: int | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    def resolved_options(self, settings: BenchSettings) -> dict[str, Any]:
        options = dict(self.options)
        if not settings.device.startswith("cuda"):
            options.update(self.cpu_options)
        names = [self.new_tokens_option] if isinstance(self.new_tokens_option, str) else self.new_tokens_option or []
        for name in names:
            options[name] = settings.new_tokens
        return options


@dataclass
class BenchSuite:
    """``suites/efficiency.yaml``: settings (GPU defaults, ``cpu:`` overrides) and models."""

    models: list[ModelSpec]
    settings: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    #: what the paper reports, quoted in the output
    reference: str = ""
    #: the goals the run is judged against, quoted in the output
    targets: list[str] = field(default_factory=list)
    description: str = ""
    notes: str = ""

    def resolve(self, device: str, overrides: dict[str, Any]) -> BenchSettings:
        """Settings for ``device``: defaults, then the suite, then its ``cpu:`` section on CPU, then the CLI."""
        values: dict[str, Any] = {**self.settings}
        if not device.startswith("cuda"):
            values.update(self.cpu)
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["device"] = device
        values["batch_sizes"] = tuple(int(b) for b in values.get("batch_sizes", BenchSettings.batch_sizes))
        if "image_size" in values:
            values["image_size"] = parse_image_size(values["image_size"])
        settings = BenchSettings(**values)
        if not settings.batch_sizes or min(settings.batch_sizes) < 1:
            raise IQABenchError(f"batch sizes must be positive integers, got {list(settings.batch_sizes)}.")
        if settings.repeats < 1 or settings.warmup < 0:
            raise IQABenchError(f"need repeats >= 1 and warmup >= 0, got repeats={settings.repeats}, "
                                f"warmup={settings.warmup}; e.g. --repeats 5 --warmup 2.")
        return settings


def parse_image_size(value: Any) -> tuple[int, int]:
    """``"512x384"`` or ``[512, 384]`` -> (width, height)."""
    try:
        width, height = (int(v) for v in (value.lower().split("x") if isinstance(value, str) else value))
    except (ValueError, TypeError, AttributeError):
        raise IQABenchError(f"image size {value!r} is not WIDTHxHEIGHT, e.g. 512x384.") from None
    if width < 1 or height < 1:
        raise IQABenchError(f"image size {value!r} must be positive.")
    return width, height


def _check_keys(mapping: Any, allowed: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise SuiteError(f"{where} must be a mapping, got {type(mapping).__name__}.")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(unknown)}. Allowed keys: {', '.join(allowed)}.")
    return mapping


def load_bench_suite(path: str | Path) -> BenchSuite:
    """Read and validate an efficiency suite (schema in docs/efficiency.md)."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"efficiency suite {path} not found; pass --suite FILE (see suites/efficiency.yaml).")
    data = _check_keys(yaml.safe_load(path.read_text()) or {}, SUITE_KEYS, str(path))
    models = []
    for index, entry in enumerate(data.get("models") or []):
        entry = _check_keys(entry, MODEL_KEYS, f"{path}: models[{index}]")
        if "name" not in entry:
            raise SuiteError(f"{path}: models[{index}] has no name.")
        stages = entry.get("stages")
        if stages is not None:
            _check_keys(stages, ("input", "calls"), f"{path}: models[{index}].stages")
            if stages.get("input", "stack") != "stack" or not isinstance(stages.get("calls"), dict):
                raise SuiteError(f"{path}: models[{index}].stages needs input: stack and calls: {{stage: method}}.")
        models.append(ModelSpec(**entry))
    if not models:
        raise SuiteError(f"{path} lists no models.")
    return BenchSuite(
        models=models,
        settings={k: data[k] for k in SETTING_KEYS if k in data},
        cpu=dict(_check_keys(data.get("cpu") or {}, SETTING_KEYS, f"{path}: cpu")),
        baseline=data.get("baseline"),
        reference=str(data.get("reference") or ""),
        targets=[str(t) for t in data.get("targets") or []],
        description=str(data.get("description") or ""),
        notes=str(data.get("notes") or ""),
    )


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


# ----------------------------------------------------------------------------------------------- parameters


def released_parameters(architecture: dict[str, Any]) -> int:
    """Exact parameter count of a released transformers architecture, built on the meta device (no memory)."""
    _check_keys(architecture, ("config", "model", "kwargs", "source"), "released_architecture")
    config_cls, model_cls = _transformers_class(architecture["config"]), _transformers_class(architecture["model"])
    kwargs = architecture.get("kwargs", {})
    config = config_cls(**(_plugin_constant(kwargs) if isinstance(kwargs, str) else kwargs))
    with torch.device("meta"):
        model = model_cls(config)
    return sum(p.numel() for p in model.parameters())


def _plugin_constant(dotted: str) -> dict[str, Any]:
    """``kwargs: iqabench_plugins.x.module.NAME``: config values a plugin already holds, so they live in one place."""
    module, _, name = dotted.rpartition(".")
    value = getattr(importlib.import_module(module), name, None) if module.startswith("iqabench_plugins.") else None
    if not isinstance(value, dict):
        raise SuiteError(f"released_architecture kwargs {dotted!r} must be a mapping or name a dict constant of an "
                         "iqabench_plugins module (e.g. iqabench_plugins.mllm.released_configs.QWEN25_VL_7B_INSTRUCT).")
    return value


def _transformers_class(dotted: str) -> type:
    """Only transformers classes: a suite file is data and must not name arbitrary code to run."""
    module, _, name = dotted.rpartition(".")
    if module != "transformers":
        raise SuiteError(f"released_architecture names {dotted!r}; only transformers.<Class> is allowed.")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------------------------- measuring


def _attribute(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _random_weights(config: dict[str, Any]) -> bool:
    """Models say so in their recorded config (``random_weights: true`` or a layout naming random weights)."""
    return config.get("random_weights") is True or any(
        isinstance(v, str) and "random weights" in v for v in config.values()
    )


def _rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


def _stage_times(model: Any, spec: ModelSpec, batch: list[Any], settings: BenchSettings) -> dict[str, float]:
    """Median ms per image of each named stage, fed the previous stage's output."""
    value: Any = torch.stack(list(batch))
    times = {}
    with torch.inference_mode():
        for stage, method in spec.stages["calls"].items():
            runs, value = _time_stage(_attribute(model, method), value, model.synchronize, settings)
            times[stage] = 1000.0 * statistics.median(runs) / len(batch)
    return times


def _time_stage(call: Any, inputs: Any, synchronize: Any, settings: BenchSettings) -> tuple[list[float], Any]:
    """Seconds per ``call(inputs)``, and the last call's output: the next stage's input."""
    output: dict[str, Any] = {}
    runs = time_batches(lambda: output.update(value=call(inputs)), synchronize,
                        warmup=settings.warmup, repeats=settings.repeats)
    return runs, output["value"]


def _end_to_end(model: Any, paths: Sequence[Path], batch_size: int, settings: BenchSettings) -> float:
    """Images per second from JPEG files to scores, decode in worker processes overlapping the model.

    The clock starts once the first batch is scored, and only later batches count: worker start-up and
    the first batch's unoverlapped decode are one-offs, not per-image costs. With a single batch the whole
    loop is timed.
    """
    from iqabench.loader import iterate_batches

    begin = time.perf_counter()
    count, start, batches = 0, None, 0
    for batch in iterate_batches(paths, model.preprocessor(), batch_size=batch_size, num_workers=settings.workers,
                                 pin_memory=settings.device.startswith("cuda")):
        items = [loaded.item for loaded in batch if loaded.error is None]
        if len(items) != len(batch):
            raise IQABenchError(f"{len(batch) - len(items)} generated JPEGs failed to decode: {batch[0].error}")
        model.score_batch(items)
        batches += 1
        if start is None:
            model.synchronize()
            start, first = time.perf_counter(), len(items)
        else:
            count += len(items)
    model.synchronize()
    if batches == 1:
        return first / (time.perf_counter() - begin)
    return count / (time.perf_counter() - start)


def measure_model(spec: ModelSpec, settings: BenchSettings, paths: Sequence[Path]) -> dict[str, Any]:
    """Everything measured for one model: per batch size rows, each possibly a recorded failure."""
    from iqabench.loader import iterate_batches
    from iqabench.registry import default_registry

    record: dict[str, Any] = {"model": spec.name, "label": spec.display, "rows": [], "error": None}
    record["rss_before_load_mib"] = _rss_mib()
    options = spec.resolved_options(settings)
    options.setdefault("dtype", settings.dtype)
    record["options"] = dict(options)
    try:
        cls = default_registry().model(spec.name)
        start = time.perf_counter()
        model = cls(**options, device=settings.device)
        record["load_seconds"] = time.perf_counter() - start
        config = model.config()
        record.update(
            parameters=int(model.num_parameters()),
            random_weights=_random_weights(config),
            input_resolution=model.input_resolution(),
            dtype=str(config.get("dtype", options["dtype"])),
            config=config,
        )
        prepare = model.preprocessor()
        start = time.perf_counter()
        items = [loaded.item for batch in iterate_batches(paths[: max(settings.batch_sizes)], prepare,
                                                           batch_size=8, num_workers=0) for loaded in batch]
        record["decode_ms_per_image"] = 1000.0 * (time.perf_counter() - start) / len(items)
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
        return record
    for batch_size in settings.batch_sizes:
        record["rows"].append(_measure_batch_size(model, spec, items, paths, batch_size, settings))
    return record


def _measure_batch_size(model: Any, spec: ModelSpec, items: list[Any], paths: Sequence[Path], batch_size: int,
                        settings: BenchSettings) -> dict[str, Any]:
    row: dict[str, Any] = {"batch_size": batch_size, "error": None}
    try:
        tokens_before = _attribute(model, spec.generated_tokens) if spec.generated_tokens else None
        result = measure(model, items, batch_size=batch_size, warmup=settings.warmup, repeats=settings.repeats)
        row.update(result.to_dict())
        if tokens_before is not None:
            calls = settings.warmup + settings.repeats
            generated = _attribute(model, spec.generated_tokens) - tokens_before
            row["new_tokens_per_image"] = generated / (calls * batch_size)
        if spec.stages:
            batch = [items[i % len(items)] for i in range(batch_size)]
            row["stage_ms_per_image"] = _stage_times(model, spec, batch, settings)
        images = max(min(spec.images or settings.images, settings.images), batch_size)
        e2e_paths = [paths[i % len(paths)] for i in range(images)]
        row["end_to_end_images_per_second"] = _end_to_end(model, e2e_paths, batch_size, settings)
    except Exception as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        row["error"] = f"{type(exc).__name__}: {exc}"
        log.warning("%s at batch size %d failed: %s", spec.display, batch_size, row["error"])
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return row


def _child(spec: ModelSpec, settings: BenchSettings, paths: list[Path], connection: Any) -> None:
    import iqabench  # noqa: F401  (the torchvision shim, before any plugin import)

    if "fork" in multiprocessing.get_all_start_methods():  # decode workers start as in a plain `iqabench` process
        multiprocessing.set_start_method("fork", force=True)
    connection.send(measure_model(spec, settings, paths))
    connection.close()


def measure_isolated(spec: ModelSpec, settings: BenchSettings, paths: list[Path]) -> dict[str, Any]:
    """:func:`measure_model` in a fresh spawned process: clean peak memory, and survival of out-of-memory kills."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(spec, settings, paths, send), name=f"bench-{spec.name}")
    process.start()
    send.close()
    try:
        record = receive.recv()
    except EOFError:
        record = None
    process.join()
    if record is None:
        why = "killed (likely out of memory)" if process.exitcode and process.exitcode < 0 else "crashed"
        record = {"model": spec.name, "label": spec.display, "rows": [],
                  "error": f"measuring process {why}, exit code {process.exitcode}"}
    return record


# ----------------------------------------------------------------------------------------------- the run


def run_bench(suite: BenchSuite, settings: BenchSettings, image_dir: str | Path, *, isolate: bool = True,
              command: list[str] | None = None) -> dict[str, Any]:
    """Measure every model of ``suite`` under ``settings``; return the JSON-ready report."""
    from iqabench.provenance import run_provenance

    count = max(max(settings.batch_sizes), 8)
    paths = make_jpegs(image_dir, count, settings.image_size)
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "num_workers": settings.workers},
        "device_name": device_name(settings.device),
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "provenance": run_provenance(command),
        "baseline": suite.baseline,
        "reference": suite.reference,
        "targets": suite.targets,
        "models": [],
    }
    for spec in suite.models:
        log.info("bench: measuring %s", spec.display)
        record = measure_isolated(spec, settings, paths) if isolate else measure_model(spec, settings, paths)
        if spec.released_architecture:
            record["released_parameters"] = released_parameters(spec.released_architecture)
            record["released_source"] = spec.released_architecture.get("source")
        record["real_size"] = _real_size(record)
        report["models"].append(record)
        gc.collect()
    report["ratios"] = ratios(report["models"], suite.baseline)
    return report


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {cpu_count()} cores available"
    except OSError:
        pass
    return f"{cpu_count()} cores available"


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


# ----------------------------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_markdown(report: dict[str, Any], *, notes: Sequence[str] = ()) -> str:
    """The efficiency leaderboard: conditions first, then costs, ratios and RALI-style stage breakdowns."""
    from tabulate import tabulate

    settings, provenance = report["settings"], report["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in provenance["versions"].items() if v and k in
                         ("iqabench", "torch", "transformers", "pillow", "numpy"))
    lines = [
        "# Efficiency: time, memory and parameters (paper section 5.4, Figure 6)",
        "",
        f"- Command: `{provenance['command']}`",
        f"- Device: {settings['device']} ({report['device_name']}); CPU: {report['cpu']}; "
        f"torch threads: {report['torch_threads']}; decode workers: {settings['num_workers']}",
        f"- dtype: {settings['dtype']} (per-model overrides in the Models table); batch sizes: "
        f"{', '.join(map(str, settings['batch_sizes']))}; new tokens (generative models): {settings['new_tokens']}",
        f"- Images: generated deterministic JPEGs of {settings['image_size'][0]}x{settings['image_size'][1]}; "
        f"warm-up calls {settings['warmup']}, timed repeats {settings['repeats']} (median)",
        f"- Versions: {versions}; Python {provenance['python']}; CUDA {provenance['cuda'] or 'none'}; "
        f"commit {provenance['git_commit'] or 'unknown'}; created {provenance['created']}",
        *[f"- {note}" for note in notes],
        "",
        "## Models",
        "",
    ]
    model_rows = []
    for m in report["models"]:
        weights = "random weights: timing only" if m.get("random_weights") else ("-" if m.get("error") else "trained")
        size = {True: "yes", False: "no (reduced)", None: "-"}[m.get("real_size")]
        model_rows.append([m["label"], _fmt(m.get("parameters"), ",d"), _fmt(m.get("released_parameters"), ",d"),
                           size, weights, m.get("dtype", "-"), m.get("input_resolution", "-"),
                           m.get("error") or "ok"])
    lines.append(tabulate(model_rows, headers=["model", "parameters (measured)", "parameters (released config)",
                                               "real size", "weights", "dtype", "input / pixel cap", "status"],
                          tablefmt="github"))
    lines += ["", "## Cost per batch size", ""]
    rows = []
    for m in report["models"]:
        for r in m["rows"]:
            rows.append([m["label"], r["batch_size"], _fmt(r.get("ms_per_image"), ".2f"),
                         _fmt(r.get("images_per_second"), ".2f"), _fmt(r.get("end_to_end_images_per_second"), ".2f"),
                         _fmt(r.get("peak_memory_mib"), ",.0f"), _fmt(r.get("new_tokens_per_image"), ".1f"),
                         r.get("error") or "ok"])
    lines.append(tabulate(rows, headers=["model", "batch", "ms/image", "images/s (model)",
                                         "images/s (end-to-end, incl. JPEG decode)", "peak memory (MiB)",
                                         "new tokens/image", "status"], tablefmt="github"))
    method = next((r.get("memory_method") for m in report["models"] for r in m["rows"] if r.get("memory_method")), "")
    if method:
        lines += ["", f"Peak memory: {method}, during the timed calls (weights included)."]
    if report["ratios"]:
        reference, targets = report.get("reference"), report.get("targets") or []
        lines += ["", f"## Ratios vs {report['ratios'][0]['baseline']}", ""]
        ratio_rows = [[r["model"], r["batch_size"], _pct(r["time"]), _pct(r["end_to_end_time"]), _pct(r["memory"]),
                       _pct(r["parameters"]), _pct(r["released_parameters"]),
                       "yes" if r["comparable"] else "no: a model is not at its released size"]
                      for r in report["ratios"]]
        lines.append(tabulate(ratio_rows, headers=["model", "batch", "time (model)", "time (end-to-end)", "peak memory",
                                                   "parameters (measured)", "parameters (released configs)",
                                                   "comparable"], tablefmt="github"))
        if reference:
            lines += ["", f"Paper: {reference}"]
        lines += [f"Target: {target}" for target in targets]
    staged = [(m, r) for m in report["models"] for r in m["rows"] if r.get("stage_ms_per_image")]
    if staged:
        lines += ["", "## Where the time goes (serial cost per image)", ""]
        names = list(staged[0][1]["stage_ms_per_image"])
        stage_rows = []
        for m, r in staged:
            parts = {"decode": m.get("decode_ms_per_image", 0.0), **r["stage_ms_per_image"]}
            total = sum(parts.values())
            shares = (f"{v:.2f} ({100 * v / total:.1f}%)" for v in parts.values())
            stage_rows.append([m["label"], r["batch_size"], *shares, f"{total:.2f}"])
        lines.append(tabulate(stage_rows, headers=["model", "batch", "decode + prepare (1 process)",
                                                   *names, "sum (ms/image)"], tablefmt="github"))
        lines += ["", "Decode is JPEG decode plus the model's preprocessing in one process; in the end-to-end "
                      "column it runs in worker processes, overlapped with the model."]
    return "\n".join(lines) + "\n"
