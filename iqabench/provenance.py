"""What produced a result: versions, commit, machine, command.

Every results file carries this so a number can be traced back and rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

#: pillow-simd replaces pillow (same import name, faster resampling, pixels within one grey level) and numba
#: computes NIQE/BRISQUE when installed: both are recorded, so results say which computed them. scikit-image
#: ships the synthetic dataset's photographs; sentence-transformers and accelerate run the offline RALI's
#: text tower and training.
PACKAGES = ("iqabench", "torch", "torchvision", "transformers", "open_clip_torch", "trl", "peft", "numpy", "scipy",
            "scikit-learn", "pillow", "pillow-simd", "numba", "pandas", "scikit-image", "sentence-transformers",
            "accelerate")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(directory: Path | None = None) -> str | None:
    """The commit of the repository holding ``directory`` (default: this package), with ``-dirty`` if modified."""
    where = directory or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True,
            timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def fingerprint(value: Any) -> str:
    """A short stable hash of JSON-serialisable settings."""
    blob = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again: the program's name, not its install path."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "iqabench"
    if program in ("__main__.py", "-m"):
        program = "python -m iqabench"
    return " ".join([program, *argv[1:]])


def portable(value: Any, home: Path | None = None, cwd: Path | None = None) -> Any:
    """``value`` with absolute paths under the working folder made relative and the home folder written ``~``.

    Results files are shared and committed; they should not carry one machine's folder names.
    """
    home_prefix = str(home or Path.home()).rstrip("/") + "/"
    cwd_prefix = str(cwd or Path.cwd()).rstrip("/") + "/"
    if isinstance(value, dict):
        return {key: portable(item, home, cwd) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item, home, cwd) for item in value]
    if isinstance(value, str):
        if value.startswith(cwd_prefix):
            return value[len(cwd_prefix):]
        if value.startswith(home_prefix):
            return "~/" + value[len(home_prefix):]
    return value


def cpu_description() -> str:
    """The CPU model and how many cores this process may use, for efficiency tables."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {cores} cores available"
    except OSError:
        pass
    return f"{cores} cores available"


def run_provenance(command: list[str] | None = None) -> dict[str, Any]:
    """Where and how a run was made; ``cuda`` is the CUDA torch used (None when the run never loaded torch)."""
    cuda = None
    if "torch" in sys.modules:
        import torch

        cuda = torch.version.cuda if torch.cuda.is_available() else None
    return {
        "command": command_line(command),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": cuda,
        "versions": package_versions(),
    }
