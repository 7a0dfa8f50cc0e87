"""CI runs the README's two commands exactly as a new user would type them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_command(heading: str) -> str:
    """The one-line command in the code block that follows the README paragraph starting with ``heading``."""
    readme = (REPO / "README.md").read_text()
    found = re.search(re.escape(heading) + r".*?\n```\n(.+?)\n```", readme, re.S)
    assert found, f"README.md has no command block after {heading!r}"
    command = found.group(1)
    assert "\n" not in command, f"the README command after {heading!r} is not one line"
    return command


def ci_value(name: str) -> str:
    """A variable of .ci/run as bash itself reads it (its quoting included)."""
    assignments = "\n".join(line for line in (REPO / ".ci" / "run").read_text().splitlines()
                            if line.startswith(f"{name}="))
    assert assignments, f".ci/run does not set {name}"
    done = subprocess.run(["bash", "-c", f'{assignments}\nprintf "%s" "${name}"'], capture_output=True, text=True,
                          check=True)
    return done.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="reading .ci/run needs bash")
@pytest.mark.parametrize(("heading", "variable"), [
    ("**Install and run the offline quickstart**", "QUICKSTART_COMMAND"),
    ("**Install and run the tests**", "TEST_COMMAND"),
])
def test_ci_runs_the_readme_command_verbatim(heading, variable):
    assert ci_value(variable) == readme_command(heading)


def test_ci_runs_both_commands_then_the_wheel_check():
    script = (REPO / ".ci" / "run").read_text()
    steps = re.search(r"^STEPS=\((.*)\)$", script, re.M).group(1).split()
    assert steps[:2] == ["quickstart", "quickstart_matches_leaderboard"]
    assert steps.index("tests") < steps.index("wheel_check") == len(steps) - 1
    # each command runs as written, through bash -c, in its own step
    assert re.search(r'^step_quickstart\(\) \{\n(?:.*\n)*?.*bash -c "\$QUICKSTART_COMMAND"', script, re.M)
    assert re.search(r'^step_tests\(\) \{\n(?:.*\n)*?.*bash -c "\$TEST_COMMAND"', script, re.M)
    # the second command does not inherit the first one's environment
    quickstart = script[script.index("step_quickstart() {"):script.index("step_tests() {")]
    assert "rm -rf .venv" in quickstart


def _results(path: Path, **srcc: float) -> Path:
    pairs = [{"model": model, "test_set": "synthetic-test", "status": "ok",
              "metrics": {"plcc": {"value": 0.5}, "srcc": {"value": value}}} for model, value in srcc.items()]
    path.write_text(json.dumps({"results": pairs}))
    return path


def test_the_quickstart_check_allows_float_noise_and_refuses_a_stale_leaderboard(tmp_path):
    check = [sys.executable, str(REPO / ".ci" / "quickstart-matches-leaderboard")]
    committed = _results(tmp_path / "committed.json", niqe=0.520, rali=0.764)
    same = _results(tmp_path / "same.json", niqe=0.520, rali=0.7644)
    assert subprocess.run([*check, str(same), str(committed)], capture_output=True).returncode == 0
    moved = _results(tmp_path / "moved.json", niqe=0.520, rali=0.339)
    done = subprocess.run([*check, str(moved), str(committed)], capture_output=True, text=True)
    assert done.returncode == 1 and "rali on synthetic-test: SRCC 0.3390, committed 0.7640" in done.stdout
    missing = _results(tmp_path / "missing.json", niqe=0.520)
    done = subprocess.run([*check, str(missing), str(committed)], capture_output=True, text=True)
    assert done.returncode == 1 and "rali on synthetic-test: in only one of the two results" in done.stdout
