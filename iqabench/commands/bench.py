"""``iqabench bench``: time, throughput, peak memory and parameters of models side by side (paper Figure 6)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tempfile
from pathlib import Path

from iqabench.commands import non_negative_int, positive_int

NAME = "bench"
HELP = "measure models' time, throughput, peak memory and parameters side by side (efficiency study)"
DEFAULT_SUITE = Path("suites") / "efficiency.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", help=f"efficiency suite file (default: {DEFAULT_SUITE} where it exists)")
    parser.add_argument("--models", help="comma-separated subset of the suite's models, or registered models to add")
    parser.add_argument("--batch-sizes", help="comma-separated, e.g. 1,4,16,64 (default: the suite's, per device)")
    parser.add_argument("--new-tokens", type=positive_int,
                        help="new tokens generative models write (suite: 256, CPU 16)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                        help="default: the suite's, per device")
    parser.add_argument("--image-size", help="WIDTHxHEIGHT of the generated JPEGs (default 512x384)")
    parser.add_argument("--images", type=positive_int, help="images per end-to-end pass (default: the suite's)")
    parser.add_argument("--warmup", type=non_negative_int, help="unmeasured calls before timing")
    parser.add_argument("--repeats", type=positive_int, help="timed calls; the median is reported")
    parser.add_argument("--num-workers", type=non_negative_int,
                        help="JPEG decode worker processes (default: cores - 1)")
    parser.add_argument("--image-dir", help="where the generated JPEGs are written (default: a temporary folder)")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="MODEL:KEY=VALUE",
                        help="model option, e.g. -o q-insight:checkpoint=/models/Q-Insight")
    parser.add_argument("--out", default="leaderboards/efficiency.md", help="markdown table to write ('-' for none)")
    parser.add_argument("--json", help="also write the full measurements as JSON to this file")
    parser.add_argument("--note", action="append", default=[], help="a line to add to the markdown header")
    parser.add_argument("--no-isolate", action="store_true",
                        help="measure in this process instead of one fresh process per model (peaks then overlap)")


def _suite(args: argparse.Namespace):
    from iqabench.efficiency.bench import BenchModel, BenchSuite, load_bench_suite
    from iqabench.errors import IQABenchError

    wanted = [name.strip() for name in (args.models or "").split(",") if name.strip()]
    path = Path(args.suite) if args.suite else DEFAULT_SUITE
    if args.suite or path.is_file():
        suite = load_bench_suite(path)
    elif wanted:  # outside a checkout: the named models with their default options, no baseline
        suite = BenchSuite(models=[BenchModel(name=name) for name in wanted])
    else:
        raise IQABenchError(f"no efficiency suite: {DEFAULT_SUITE} is not here. Pass --suite FILE, or --models "
                            "NAME[,NAME...] to measure registered models with their default options.")
    if wanted:
        known = {entry.name: entry for entry in suite.models}
        suite.models = [known.get(name) or BenchModel(name=name) for name in wanted]
    return suite


def _apply_options(suite, flags: list[str]) -> None:
    from iqabench.errors import UnknownNameError
    from iqabench.registry.options import parse_option_flags

    for flag in flags:
        model, sep, option = flag.partition(":")
        if not sep:
            raise UnknownNameError(f"option {flag!r} is not MODEL:KEY=VALUE (e.g. -o q-insight:max_pixels=200704).")
        entries = [entry for entry in suite.models if entry.name == model]
        if not entries:
            raise UnknownNameError(f"option {flag!r} names model {model!r}, which is not in this run: "
                                   f"{', '.join(entry.name for entry in suite.models)}.")
        for entry in entries:
            parsed = parse_option_flags([option])
            entry.options.update(parsed)
            entry.cpu_options.update(parsed)  # what the user says wins on every device


def _command_line(args: argparse.Namespace) -> list[str]:
    """The command that reproduces this run, rebuilt from the parsed arguments (also when called from Python).

    ``--image-dir`` is left out: the generated JPEGs are the same wherever they are written.
    """
    command = ["iqabench", "bench"]
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        unset = value is None or value is False or value == []  # 0 (--warmup 0) is a value, not unset
        if unset or key in ("handler", "command", "verbose", "image_dir"):
            continue
        if key == "option":
            command += [part for option in value for part in ("-o", shlex.quote(option))]
        elif key == "note":
            command += [part for note in value for part in ("--note", shlex.quote(note))]
        elif value is True:
            command.append(flag)
        elif not (key == "out" and value == "leaderboards/efficiency.md"):
            command += [flag, shlex.quote(str(value))]
    return command


def run(args: argparse.Namespace) -> int:
    from iqabench.efficiency.bench import model_options, run_bench
    from iqabench.registry.factory import check_model_options, resolve_device
    from iqabench.reports.bench_report import render_markdown

    device = resolve_device(args.device)
    suite = _suite(args)
    _apply_options(suite, args.option)
    overrides = {
        "batch_sizes": _batch_sizes(args.batch_sizes), "new_tokens": args.new_tokens, "dtype": args.dtype,
        "image_size": args.image_size, "images": args.images, "warmup": args.warmup, "repeats": args.repeats,
        "num_workers": args.num_workers,
    }
    settings = suite.resolve(device, overrides)
    for entry in suite.models:  # every name and option checked before the first model is measured
        options = model_options(entry, settings)
        options.pop("dtype", None)
        check_model_options(entry.name, options)
    command = _command_line(args)
    with tempfile.TemporaryDirectory(prefix="iqabench-bench-") as scratch:
        report = run_bench(suite, settings, args.image_dir or scratch, isolate=not args.no_isolate, command=command)
    notes = list(args.note)
    if not device.startswith("cuda"):
        notes.append(f"CPU run with the suite's reduced settings (batch sizes {list(settings.batch_sizes)}, "
                     f"{settings.new_tokens} new tokens); no GPU numbers are in this file.")
    figure = None
    if args.out != "-":
        from iqabench.reports.figures import efficiency_figure

        figure = Path(args.out).with_suffix(".png")
        figure.parent.mkdir(parents=True, exist_ok=True)
        efficiency_figure(report, figure)
    markdown = _portable_text(render_markdown(report, notes=notes, figure=figure.name if figure else None))
    if args.out != "-":
        Path(args.out).write_text(markdown)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(_portable_text(json.dumps(report, indent=2, default=str)))
    print(markdown)
    failed = [m["label"] for m in report["models"] if m.get("error") or any(r.get("error") for r in m["rows"])]
    return 1 if failed else 0


def _batch_sizes(text: str | None) -> list[int] | None:
    from iqabench.errors import IQABenchError

    if text is None:
        return None
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise IQABenchError(f"--batch-sizes {text!r} is not a comma-separated list of positive integers, e.g. 1,4,16.")
    return sizes


def _portable_text(text: str) -> str:
    """``text`` with the working folder's prefix dropped and the home folder written ``~``.

    The leaderboard is committed: paths in the command, the model options and failure tracebacks must not carry
    one machine's folder names.
    """
    for folder, replacement in ((Path.cwd(), ""), (Path.home(), "~/")):
        prefix = str(folder).rstrip("/") + "/"
        if prefix != "/":  # only where a path starts, not inside a longer one
            text = re.sub(r"(?<![\w./~-])" + re.escape(prefix), replacement, text)
    return text
