"""Cost of fingerprinting what a run reads (issue 23): a 10k-image test set's stat calls, and the code identity.

Run: ``python -m pytest benchmarks/bench_content.py --benchmark-enable``.

A pair's fingerprint holds every image's size and modification time (:func:`iqabench.content.images_digest`), taken
once per test set per launch. Against it: the label digest the fingerprint held before (names and MOS only), to
see what the stat calls add. ``--hash-images`` reads every byte instead; it is
measured on the same files (small here, 2 KiB each: real photos take as long as reading them from disk).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iqabench import content
from iqabench.provenance import fingerprint

IMAGES = 10_000


@pytest.fixture(scope="module")
def ten_thousand_images(tmp_path_factory) -> tuple[list[Path], list[str]]:
    root = tmp_path_factory.mktemp("images")
    (root / "1024x768").mkdir()
    names = [f"1024x768/{1_000_000 + i}.jpg" for i in range(IMAGES)]
    for name in names:
        (root / name).write_bytes(b"\xff\xd8" + bytes(2046))
    return [root / name for name in names], names


def test_label_digest(benchmark, ten_thousand_images):
    _, names = ten_thousand_images
    benchmark(lambda: fingerprint([(name, 3.25) for name in names]))


def test_image_stats_of_ten_thousand_images(benchmark, ten_thousand_images):
    paths, names = ten_thousand_images
    benchmark(lambda: content.images_digest(paths, names))


def test_image_bytes_of_ten_thousand_images(benchmark, ten_thousand_images):
    paths, names = ten_thousand_images
    benchmark.pedantic(lambda: content.images_digest(paths, names, content=True), rounds=3, iterations=1)


def test_code_identity_of_a_built_in_plugin(benchmark):
    from iqabench_plugins.niqe.model import NIQE

    content.code_identity(NIQE)  # the first call imports metadata and fills the hash cache
    benchmark(lambda: content.code_identity(NIQE))
