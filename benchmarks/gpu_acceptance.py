"""Every GPU path of iqabench proven in one prepared command (issue 28): the acceptance run and its CPU dry run.

    benchmarks/gpu_acceptance.sh install                 # on the GPU machine (a call of its own, < 10 minutes)
    benchmarks/gpu_acceptance.sh run --out DIR           # the five steps (a second call, < 8 minutes on one H100)
    python benchmarks/gpu_acceptance.py --dry-run --out DIR   # the same steps on the CPU with tiny sizes

Each step runs in a process of its own (its own session, so a hung step and everything it started are killed at
its time limit) and ends PASS, FAIL or SKIP; the run also stops starting steps when its overall budget is spent.
Everything lands in one folder of 8 files (what a device call brings back at most): ``report.md``, ``report.json``,
``acceptance.png`` (throughput and training-loss panels), ``logs.txt`` (every step's log), and ``iqabench
bench``'s own ``efficiency.md``, ``efficiency.json``, ``efficiency.png`` with the suite it ran,
``efficiency-suite.yaml``. docs/efficiency.md says how to read it.

This module imports only the standard library at the top: ``--constraints`` and ``--wheel-list`` run before
iqabench is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StepSpec:
    name: str
    title: str
    #: time limits in seconds: on the GPU machine, and for the dry run on a 2-core CPU (there only against hangs: a
    #: CPU shared with other jobs may take several times the dry run's 100 s of CPU time)
    limit: int
    dry_limit: int


STEPS = (
    StepSpec("bench", "1. `iqabench bench` at real size: RALI (ViT-L/14-336) vs Q-Insight (Qwen2.5-VL-7B), bf16", 270,
             300),
    StepSpec("throughput", "2. RALI end to end over generated 512x384 JPEGs, decode included", 90, 150),
    StepSpec("cuda", "3. CUDA correctness: every model family, gradients, RALI training in bf16 + checkpointing", 150,
             300),
    StepSpec("accelerate", "4. `accelerate launch --multi_gpu` gives the predictions of one process", 90, 300),
    StepSpec("vllm", "5. vLLM runs the tiny Qwen2.5-VL", 150, 120),
)
#: the whole run on the GPU machine: what one device call leaves after the machine's start, with room to spare
GPU_BUDGET = 480
#: what a run writes into its report folder (a device call brings back at most 8 files)
REPORT_FILES = ("report.md", "report.json", "acceptance.png", "logs.txt", "efficiency.md", "efficiency.json",
                "efficiency.png", "efficiency-suite.yaml")
#: a step is not started with less time than this left (it is recorded SKIP, "no time left")
MIN_STEP_SECONDS = 20
#: the torch build a GPU machine already has is kept: these distributions are pinned at their installed versions
TORCH_STACK = re.compile(r"^(torch|torchvision|torchaudio|triton|pytorch-triton.*|nvidia-.*|cuda-.*)$")
#: packages the device machines of this workplace have (the device tool's list of kinds, read on 2026-11-17): the
#: wheels to carry there are iqabench[train]'s requirements outside this list
MACHINE_PACKAGES = REPO / "benchmarks" / "gpu_machine_packages.txt"


# ----------------------------------------------------------------------------------------------- install helpers


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """``{normalised name: version}`` of the distributions this Python sees."""
    from importlib.metadata import distributions

    return {_normal(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def machine_constraints(packages: dict[str, str]) -> list[str]:
    """Pins that keep the machine's torch build: its torch stack at the installed versions, or nothing without
    torch (then ``constraints.txt`` applies: PyPI's ``torch==2.13.0`` for Linux x86-64 is its CUDA build)."""
    if "torch" not in packages:
        return []
    return sorted(f"{name}=={version}" for name, version in packages.items() if TORCH_STACK.match(name))


def wheel_list(have: set[str], extras: tuple[str, ...] = ("train",)) -> list[str]:
    """``name==version`` of iqabench's requirements (with ``extras``) that a machine holding ``have`` lacks, and of
    theirs, at the versions installed here (those CI tests), plus setuptools to build the editable install."""
    from importlib.metadata import PackageNotFoundError, distribution

    import tomllib
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    queue = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        queue += [Requirement(r) for r in project["optional-dependencies"][extra] if not r.startswith("iqabench")]
    environment = {**default_environment(), "python_version": "3.12", "extra": ""}
    found: dict[str, str] = {}
    while queue:
        requirement = queue.pop()
        name = _normal(requirement.name)
        if name in have or name in found or (requirement.marker and not requirement.marker.evaluate(environment)):
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            message = f"{name} is not installed here: install iqabench[dev] first, then list the wheels."
            raise SystemExit(message) from None
        found[name] = dist.version
        queue += [Requirement(r) for r in (dist.requires or []) if "extra ==" not in r]
    found["setuptools"] = distribution("setuptools").version  # the machine's may predate pyproject's >=69
    return sorted(f"{name}=={version}" for name, version in found.items())


def machine_packages(path: Path = MACHINE_PACKAGES) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {_normal(line) for line in lines if line}


# ----------------------------------------------------------------------------------------------- one step


def run_step(name: str, dry_run: bool, work: Path, report: Path, install: dict[str, Any]) -> None:
    """Run step ``name`` in this process and write its record to ``work/steps/NAME.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from gpu_acceptance_steps import DRY, GPU, StepContext, StepSkipped
    from gpu_acceptance_steps import STEPS as FUNCTIONS

    import iqabench  # noqa: F401  (the torchvision shim, before any plugin import)

    report.mkdir(parents=True, exist_ok=True)
    ctx = StepContext(name, dry_run, DRY if dry_run else GPU, work, report, install)
    start = time.perf_counter()
    status, reason = "PASS", ""
    try:
        FUNCTIONS[name](ctx)
    except StepSkipped as exc:
        status, reason = "SKIP", str(exc)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        status, reason = "FAIL", f"{type(exc).__name__}: {exc}"[:1000]
    if status == "PASS" and not all(check["ok"] for check in ctx.checks):
        status = "FAIL"
        reason = "; ".join(c["check"] for c in ctx.checks if not c["ok"])[:1000]
    record = {"name": name, "status": status, "reason": reason, "summary": ctx.summary, "checks": ctx.checks,
              "targets": ctx.targets, "tables": ctx.tables, "data": ctx.data,
              "seconds_inside": time.perf_counter() - start}
    (work / "steps").mkdir(parents=True, exist_ok=True)
    (work / "steps" / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))


# ----------------------------------------------------------------------------------------------- the run


def launch_step(spec: StepSpec, limit: float, args: argparse.Namespace, work: Path, report: Path) -> dict[str, Any]:
    """Step ``spec`` in a child process limited to ``limit`` seconds; its record, or a FAIL saying what happened."""
    log = work / "logs" / f"{spec.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result = work / "steps" / f"{spec.name}.json"
    result.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--step", spec.name, "--work", str(work),
               "--out", str(report)]
    if args.dry_run:
        command.append("--dry-run")
    if args.install_record:
        command += ["--install-record", str(args.install_record)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with log.open("w") as handle:
        child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                 start_new_session=True)
        try:
            code = child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill_session(child.pid)  # the step's own children too (bench processes, decode workers, launchers)
            child.wait()
    seconds = time.perf_counter() - start
    if code is None:
        record = {"name": spec.name, "status": "FAIL", "reason": f"ran past its time limit of {limit:.0f} s"}
        if result.exists():  # a step that wrote its record and then hung on exit
            record = {**json.loads(result.read_text()), "status": "FAIL", "reason": record["reason"]}
    elif result.exists():
        record = json.loads(result.read_text())
    else:
        record = {"name": spec.name, "status": "FAIL", "reason": f"exited with code {code} without a result"}
    record.update(title=spec.title, seconds=seconds, limit=limit, log_tail=_tail(log, 40))
    return record


def _kill_session(pid: int) -> None:
    """End the step's process and every process it started: its session, and the descendants that left it
    (torchrun starts its workers in sessions of their own). SIGTERM first, so launchers stop their workers."""
    import psutil

    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for process in descendants:
            try:
                process.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, descendants = psutil.wait_procs(descendants, timeout=5 if sig == signal.SIGTERM else 1)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def machine_description(dry_run: bool) -> dict[str, Any]:
    import platform

    # torch is asked in a process of its own: this one must not hold a CUDA context (GPU memory) while steps run
    probe = ("import json, torch; print(json.dumps([torch.__version__, torch.version.cuda, "
             "[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    torch_version, cuda, gpus = json.loads(done.stdout.strip().splitlines()[-1])
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch_version, "cuda": cuda, "gpus": gpus,
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(), "dry_run": dry_run,
    }
    try:
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            cwd=REPO, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    versions = installed()
    info["versions"] = {name: versions.get(name) for name in
                        ("iqabench", "torch", "torchvision", "transformers", "accelerate", "open-clip-torch", "vllm")}
    return info


def run_all(args: argparse.Namespace) -> int:
    report = Path(args.out)
    report.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:  # a report is one run's: nothing of an earlier one stays beside it
        (report / name).unlink(missing_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="iqabench-gpu-acceptance-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    machine = machine_description(args.dry_run)
    if not args.dry_run and not machine["gpus"]:
        print("torch sees no CUDA GPU: nothing to accept here. Use --dry-run to check the script on the CPU.",
              file=sys.stderr)
        return 2
    install = _read_install(args.install_record)
    wanted = [s for s in STEPS if not args.steps or s.name in args.steps.split(",")]
    budget = args.budget if args.budget is not None else (None if args.dry_run else GPU_BUDGET)
    started = time.perf_counter()
    records = []
    for spec in wanted:
        limit = float(spec.dry_limit if args.dry_run else spec.limit)
        left = None if budget is None else budget - (time.perf_counter() - started)
        if left is not None and left < MIN_STEP_SECONDS:
            record = {"name": spec.name, "title": spec.title, "status": "SKIP", "seconds": 0.0, "limit": limit,
                      "reason": f"no time left in the run's {budget} s budget"}
        else:
            record = launch_step(spec, limit if left is None else min(limit, left), args, work, report)
        records.append(record)
        print(status_line(record), flush=True)
    result = {"dry_run": args.dry_run, "machine": machine, "install": install, "budget_seconds": budget,
              "seconds": time.perf_counter() - started, "work": str(work), "steps": records,
              "command": " ".join(["benchmarks/gpu_acceptance.py", *sys.argv[1:]])}
    write_report(result, report, work)
    print(f"report: {report / 'report.md'}", flush=True)
    return 1 if any(r["status"] == "FAIL" for r in records) else 0


def _read_install(path: str | None) -> dict[str, Any]:
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return {}


def status_line(record: dict[str, Any]) -> str:
    detail = record.get("reason") if record["status"] != "PASS" else record.get("summary")
    return (f"{record['status']:4}  {record['name']:10}  {record.get('seconds', 0):6.1f} s of "
            f"{record.get('limit', 0):.0f} s  {detail or ''}")


# ----------------------------------------------------------------------------------------------- the report


def write_report(result: dict[str, Any], report: Path, work: Path) -> None:
    (report / "report.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    figure = acceptance_figure(result, report / "acceptance.png")
    (report / "report.md").write_text(render_markdown(result, figure=figure.name if figure else None))
    with (report / "logs.txt").open("w") as handle:
        for record in result["steps"]:
            handle.write(f"===== {record['name']} ({record['status']}) =====\n")
            handle.write(_tail(work / "logs" / f"{record['name']}.log", 400) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _target_value(target: dict[str, Any]) -> str:
    value = target["value"]
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if target["unit"] == "ratio" else f"{value:,.1f} {target['unit']}"


def render_markdown(result: dict[str, Any], *, figure: str | None = None) -> str:
    machine, install = result["machine"], result.get("install") or {}
    title = ("# GPU acceptance: dry run on the CPU (tiny sizes; proves the script, measures no GPU)"
             if result["dry_run"] else "# GPU acceptance run (issue 28)")
    gpus = ", ".join(machine["gpus"]) or "none"
    lines = [title, "",
             f"- Command: `{result['command']}`",
             f"- Machine: GPUs {gpus}; driver {machine.get('driver') or '-'}; {machine['cpu_cores']} CPU cores; "
             f"Python {machine['python']}; torch {machine['torch']} (CUDA {machine['cuda'] or 'none'}); "
             f"commit {machine.get('git_commit') or '-'}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)]
    if install:
        lines.append(f"- Install (`benchmarks/gpu_acceptance.sh install`, a call of its own): "
                     f"{install.get('seconds', 0):.0f} s, {install.get('mode', '-')}; vLLM: "
                     f"{install.get('vllm', {}).get('status', '-')}")
    else:
        lines.append("- Install: none recorded (this run used the environment it was started in)")
    budget = f" of a {result['budget_seconds']} s budget" if result.get("budget_seconds") else ""
    lines += [f"- Run: {result['seconds']:.0f} s{budget}; each step in its own process with its own time limit", "",
              "| step | status | seconds | limit (s) | result |", "|---|---|---|---|---|"]
    for record in result["steps"]:
        what = record.get("summary") if record["status"] == "PASS" else record.get("reason")
        lines.append(f"| {record['title']} | **{record['status']}** | {record.get('seconds', 0):.1f} | "
                     f"{record.get('limit', 0):.0f} | {_cell(what or '')} |")
    targets = [(r["name"], t) for r in result["steps"] for t in r.get("targets", [])]
    if targets:
        lines += ["", "## Targets", "",
                  "Measurements, not checks: a missed target does not fail its step. "
                  + ("The dry run does not judge them (tiny models on a CPU)." if result["dry_run"] else ""), ""]
        rows = [[step, t["target"], _target_value(t), ("<= " if t["at_most"] else ">= ")
                 + (f"{100 * t['limit']:.0f}%" if t["unit"] == "ratio" else f"{t['limit']:,.0f} {t['unit']}"),
                 {True: "met", False: "**not met**", None: "not judged"}[t["met"]]] for step, t in targets]
        lines += _table(["step", "target", "measured", "goal", ""], rows)
    if figure:
        lines += ["", f"![End-to-end throughput and alignment loss]({figure})"]
    for record in result["steps"]:
        lines += ["", f"## {record['title']}", "", f"**{record['status']}** in {record.get('seconds', 0):.1f} s "
                  f"(limit {record.get('limit', 0):.0f} s)" + (f": {record['reason']}" if record.get("reason") else "")]
        if record.get("checks"):
            lines.append("")
            lines += [f"- {'pass' if c['ok'] else '**FAIL**'}: {c['check']}" + (f" ({c['detail']})" if c["detail"]
                                                                                 else "") for c in record["checks"]]
        for table in record.get("tables", []):
            lines += ["", f"{table['title']}:", ""] + _table(table["headers"], table["rows"])
        if record["status"] == "FAIL" and record.get("log_tail"):
            lines += ["", "End of the step's log:", "", "```", record["log_tail"], "```"]
    if (result.get("steps") and any(r["name"] == "bench" and r["status"] != "SKIP" for r in result["steps"])):
        lines += ["", "`iqabench bench`'s own report: [efficiency.md](efficiency.md), with efficiency.json, "
                      "efficiency.png and the suite it ran, efficiency-suite.yaml."]
    return "\n".join(lines) + "\n"


def acceptance_figure(result: dict[str, Any], path: Path) -> Path | None:
    """Two panels: images/s of decoding, the model and the whole pipeline against the target; the alignment loss."""
    data = {r["name"]: r.get("data", {}) for r in result["steps"]}
    flow, align = data.get("throughput", {}), data.get("cuda", {}).get("alignment")
    if not flow.get("end_to_end_images_per_second") and not align:
        return None
    import matplotlib

    from iqabench.reports.figures import STYLE, _figure, save_png

    with matplotlib.style.context(["default", STYLE]):
        figure = _figure(9, 3.4)
        left, right = figure.subplots(1, 2)
        if flow.get("end_to_end_images_per_second"):
            names = [f"decode\n({flow['workers']} worker{'s' if flow['workers'] != 1 else ''})", "model alone",
                     "end to end"]
            values = [flow["decode_images_per_second"], flow["model_images_per_second"],
                      flow["end_to_end_images_per_second"]]
            bars = left.bar(names, values, color=["#8da0cb", "#66c2a5", "#fc8d62"])
            left.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=2, fontsize=8)
            left.axhline(1000, color="black", linestyle="--", linewidth=1, label="target 1,000 images/s")
            left.set_ylabel("images/s")
            left.set_title(f"RALI, batch {flow['batch_size']}, {flow['images']} JPEGs")
            left.legend(loc="upper right")
        if align:
            for key, label in (("bf16_checkpointed_losses", "bf16 + checkpointing"),
                               ("fp32_losses", "fp32 (memory only)")):
                values = align.get(key) or []
                right.plot(range(1, len(values) + 1), values, marker="o", label=label)
            right.set_xlabel("alignment step (one fixed batch)")
            right.set_ylabel("InfoNCE loss")
            right.set_title(f"Alignment steps: {align['scale']}, batch {align['batch']}")
            right.legend(loc="upper right")
        save_png(figure, path)
    return path


# ----------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU with tiny sizes")
    parser.add_argument("--out", default="runs/gpu-acceptance", help="report folder (at most 8 files)")
    parser.add_argument("--work", help="scratch folder for images and tiny models (default: a temporary one)")
    parser.add_argument("--steps", help=f"comma-separated subset of {','.join(s.name for s in STEPS)}")
    parser.add_argument("--budget", type=float, help=f"seconds for the whole run (GPU default {GPU_BUDGET})")
    parser.add_argument("--install-record", help="install.json written by `gpu_acceptance.sh install`")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--constraints", action="store_true",
                        help="print pins that keep this machine's torch build (nothing when it has no torch)")
    parser.add_argument("--wheel-list", action="store_true",
                        help="print name==version of the wheels a GPU machine without a package index needs")
    args = parser.parse_args(argv)
    if args.constraints:
        print("\n".join(machine_constraints(installed())))
        return 0
    if args.wheel_list:
        print("\n".join(wheel_list(machine_packages())))
        return 0
    if args.step:
        run_step(args.step, args.dry_run, Path(args.work), Path(args.out), _read_install(args.install_record))
        return 0
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
