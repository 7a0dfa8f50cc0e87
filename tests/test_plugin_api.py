"""One public surface for plugins (issue 25): ``iqabench.api``, documented, and the only core module the
built-in plugins and the examples import (besides the user API at the top level)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import iqabench
import iqabench.api as api

REPO = Path(__file__).resolve().parent.parent
#: what a plugin may take from the top level: the user API (building and calling other models)
USER_API = {"create_model", "create_dataset", "create_trainer", "Scorer", "ImageReward", "GRPOReward", "QualityLoss",
            "__version__"}


def core_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, what)`` of every import of a core module other than ``iqabench.api`` and the user API."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):  # `import iqabench` is the user API; its attributes are checked below
            found.extend((node.lineno, f"import {alias.name}") for alias in node.names
                         if alias.name.startswith("iqabench."))
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "iqabench"
              and node.attr not in USER_API | {"api"}):
            found.append((node.lineno, f"iqabench.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "iqabench":
                found.extend((node.lineno, f"from iqabench import {alias.name}") for alias in node.names
                             if alias.name not in USER_API)
            elif node.module.startswith("iqabench.") and node.module != "iqabench.api":
                found.append((node.lineno, f"from {node.module} import ..."))
    return found


def test_built_in_plugins_and_examples_import_only_the_public_surface():
    files = sorted((REPO / "plugins").rglob("*.py")) + sorted((REPO / "examples").rglob("*.py"))
    assert len(files) > 50
    offenders = [f"{path.relative_to(REPO)}:{line}: {what}" for path in files for line, what in core_imports(path)]
    assert offenders == [], "plugins import from iqabench.api only:\n" + "\n".join(offenders)


def test_the_check_sees_imports_inside_functions_and_type_checking_blocks(tmp_path):
    module = tmp_path / "plugin.py"
    module.write_text("from typing import TYPE_CHECKING\nfrom iqabench.api import Model\n"
                      "from iqabench import create_model\n"
                      "if TYPE_CHECKING:\n    from iqabench.scoring.inputs import Inputs\n"
                      "def f():\n    import iqabench.lazy\n    from iqabench import hookimpl\n"
                      "import iqabench\niqabench.create_model('x')\niqabench.progress.bar()\n")
    assert sorted(core_imports(module)) == [(5, "from iqabench.scoring.inputs import ..."), (7, "import iqabench.lazy"),
                                            (8, "from iqabench import hookimpl"), (11, "iqabench.progress")]


def test_every_public_name_resolves_and_is_documented():
    documented = (REPO / "docs" / "plugins.md").read_text()
    for name in api.__all__:
        assert getattr(api, name) is not None, name
        assert re.search(rf"`{re.escape(name)}\b", documented), f"iqabench.api.{name} is not in docs/plugins.md"
    assert api.hookimpl is iqabench.hookimpl and api.Model is iqabench.Model


def test_an_unknown_name_says_where_the_surface_is_listed():
    try:
        api.score_files  # noqa: B018
    except AttributeError as error:
        assert "docs/plugins.md" in str(error)
    else:
        raise AssertionError("iqabench.api.score_files is not part of the plugin surface")


@pytest.mark.slow
def test_a_plugin_entry_module_importing_the_hook_marker_loads_nothing_heavy():
    heavy = ("torch", "scipy", "transformers", "PIL")
    code = ("import sys\nfrom iqabench.api import hookimpl, Model, Dataset\n"
            f"print(__import__('json').dumps([m for m in {heavy!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_examples_in_docs_plugins_md_are_the_files_ci_installs():
    """Copy-pasteable means identical: every file the page shows is the example file, character for character."""
    text = (REPO / "docs" / "plugins.md").read_text()
    shown = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", text, flags=re.S)
    assert {path for path, _ in shown} == {
        "examples/iqabench-sharpness/iqabench_sharpness/__init__.py", "examples/iqabench-sharpness/pyproject.toml",
        "examples/iqabench-photoset/iqabench_photoset/__init__.py", "examples/iqabench-photoset/pyproject.toml",
    }
    for path, code in shown:
        assert code == (REPO / path).read_text().rstrip(), f"docs/plugins.md shows an outdated {path}"
