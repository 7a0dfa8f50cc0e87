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
