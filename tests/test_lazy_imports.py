"""Commands that do not need torch, SciPy or a plugin's model code do not import them (issue 16).

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

import json
import subprocess
import sys

import pytest

#: every test here starts other Python processes
pytestmark = pytest.mark.slow

HEAVY = ("torch", "torchvision", "transformers", "open_clip", "sklearn", "scipy", "numba", "matplotlib", "pandas")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_iqabench_and_the_cli_parser_load_nothing_heavy():
    assert _imported_after("import iqabench\nfrom iqabench.cli import build_parser\nbuild_parser()") == []


def test_listing_models_imports_no_torch_or_scipy():
    code = "from iqabench.registry.discovery import default_registry\nprint(len(default_registry().entries('model')))"
    assert _imported_after(code) == []


def test_torchvision_still_gets_the_shim_when_first_imported():
    code = ("import iqabench\nimport torchvision\nfrom iqabench import torchvision_shim\n"
            "assert not any(isinstance(f, torchvision_shim.ShimOnImport) for f in sys.meta_path)")
    assert "torchvision" in _imported_after(code)
