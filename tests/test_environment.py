"""The install the README prescribes: the pinned CPU torch stays, and the torchvision shim makes the stack import."""

import os
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    os.environ.get("CI") != "true",
    reason="checks that an install with -c constraints.txt kept the pinned CPU torch; runs when CI=true (.ci/run sets "
    "it), since a GPU machine installs its CUDA torch on purpose",
)
def test_constraints_kept_the_pinned_cpu_torch():
    pinned = re.search(r"^torch==(\S+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
    assert torch.__version__.split("+")[0] == pinned
    assert torch.__version__.endswith("+cpu"), f"a non-CPU torch was installed: {torch.__version__}"


def test_torchvision_dependent_libraries_import_after_iqabench():
    import open_clip
    from transformers import CLIPModel

    import iqabench  # noqa: F401  (installs the shim)

    assert callable(open_clip.create_model) and CLIPModel.__name__ == "CLIPModel"
