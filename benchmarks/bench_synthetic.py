"""Speed of generating the synthetic dataset, one reference at a time (the full set is 9 references).

Target: the whole default dataset (489 images) well under a minute on one CPU core, so
the offline quickstart's first run stays short.

Run: OMP_NUM_THREADS=1 taskset -c 0 python -m pytest benchmarks/bench_synthetic.py --benchmark-enable
"""

import itertools

import torch

import iqabench  # noqa: F401  (installs the torchvision shim before plugins import)
from iqabench.scoring.images import load_image
from iqabench_plugins.synthetic import Describer
from iqabench_plugins.synthetic.distortions import DISTORTIONS
from iqabench_plugins.synthetic.generate import DEFAULT_SIZE, generate

counter = itertools.count()


def test_generate_one_colour_reference_all_distortions(benchmark, tmp_path):
    def one_generation():
        return generate(tmp_path / f"run{next(counter)}", DEFAULT_SIZE, ["astronaut"], list(DISTORTIONS))

    manifest = benchmark.pedantic(one_generation, rounds=3, iterations=1)
    assert len(manifest["images"]) == 1 + 5 * len(DISTORTIONS)


def test_describer_text_for_64_images(benchmark, tmp_path):
    generate(tmp_path / "384x256", DEFAULT_SIZE, ["coffee"], ["jpeg", "contrast"])
    describer = Describer(root=tmp_path)
    prepare = describer.preprocessor()
    items = [prepare(load_image(path)) for path in sorted(tmp_path.rglob("*.png"))] * 6
    torch.manual_seed(0)
    scores = benchmark(describer.score_batch, items[:64])
    assert not any(score.failed for score in scores)
