"""`pip install .` must install every package: the list in pyproject.toml is checked against the source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in the standard library from Python 3.11")
def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    installed_as = {folder: package for package, folder in config["package-dir"].items()}
    found = set()
    for top in ("iqabench", "plugins"):
        for init in (REPO / top).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO).parts
            found.add(".".join((installed_as[parts[0]], *parts[1:])))
    assert found == set(config["packages"]), "pyproject.toml's [tool.setuptools] packages list differs from the tree"


def _imported_modules(folder: Path) -> set[str]:
    import ast

    names = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_niqe_and_brisque_share_the_nss_package_and_import_not_each_other():
    niqe, brisque = _imported_modules(REPO / "plugins" / "niqe"), _imported_modules(REPO / "plugins" / "brisque")
    assert not any(name.startswith("iqabench_plugins.brisque") for name in niqe)
    assert not any(name.startswith("iqabench_plugins.niqe") for name in brisque)
    assert any(name.startswith("iqabench_plugins.nss") for name in niqe & brisque)


def test_installed_packages_hold_no_development_script_reading_shared_data():
    # ../shared/data exists only on the project's machines: code that reads it belongs in tools/, not the wheel
    offenders = [str(path.relative_to(REPO)) for top in ("iqabench", "plugins") for path in (REPO / top).rglob("*.py")
                 if '"shared"' in path.read_text() or "shared/data" in path.read_text()]
    assert offenders == []
