"""Speed of the two classical scorers on a 512x384 photo (NIQE's target: under 0.3 s on one CPU core).

Run: OMP_NUM_THREADS=1 taskset -c 0 python -m pytest benchmarks/bench_niqe_brisque.py --benchmark-enable
"""

from pathlib import Path

import iqabench  # noqa: F401  (installs the torchvision shim before plugins import)
import pytest
from PIL import Image

from iqabench_plugins.brisque import BRISQUE
from iqabench_plugins.niqe import NIQE

IMAGE = Path(__file__).parent.parent / "tests" / "data" / "niqe" / "image1.png"


@pytest.mark.parametrize("model_class", [NIQE, BRISQUE], ids=lambda cls: cls.name)
def test_512x384(benchmark, model_class):
    model = model_class()
    photo = Image.open(IMAGE).convert("RGB").crop((0, 0, 512, 384))
    gray = model.preprocessor()(photo)
    (score,) = benchmark(model.score_batch, [gray])
    assert not score.failed
