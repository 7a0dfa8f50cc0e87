"""Speed of BRISQUE on a 512x384 photo.

Run: OMP_NUM_THREADS=1 taskset -c 0 python -m pytest benchmarks/bench_brisque.py --benchmark-enable
"""

from pathlib import Path

import iqabench  # noqa: F401  (installs the torchvision shim before plugins import)
import pytest
from PIL import Image

from iqabench_plugins.brisque import BRISQUE

IMAGE = Path(__file__).parent.parent / "tests" / "data" / "niqe" / "image1.png"


@pytest.fixture(scope="module")
def gray_512x384():
    model = BRISQUE()
    photo = Image.open(IMAGE).convert("RGB").crop((0, 0, 512, 384))
    return model, model.preprocessor()(photo)


def test_brisque_512x384(benchmark, gray_512x384):
    model, gray = gray_512x384
    (score,) = benchmark(model.score_batch, [gray])
    assert not score.failed
