"""The two example plugins of docs/plugins.md, a model and a dataset, as a third party would ship them (issue 25).

CI installs both from ``examples/`` into the test environment (``pip install -e examples/iqabench-sharpness
-e examples/iqabench-photoset``) and the first test runs a suite with them through
the ordinary entry points. The second test needs no install: it gives the dataset example the entry-point
metadata pip would write, so it runs everywhere.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from PIL import ImageFilter

from iqabench.registry.discovery import PluginRegistry
from tests.differentiable import photo

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ("iqabench-sharpness", "iqabench-photoset")
#: (image, rating 0-10, blur radius): one photograph, blurred more as the rating falls
PHOTOS = [(f"p{level}.jpg", 9.0 - 1.4 * level, 1.2 * level) for level in range(6)]
TEST = ("p0.jpg", "p2.jpg", "p3.jpg", "p5.jpg")


def write_photoset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    base = photo(160, 120)
    for name, _, radius in PHOTOS:
        base.filter(ImageFilter.GaussianBlur(radius)).save(root / "images" / name, quality=95)
    (root / "scores.txt").write_text("# name mos std\n" + "".join(f"{n} {m:.1f} 0.8\n" for n, m, _ in PHOTOS))
    (root / "test.txt").write_text("\n".join(TEST) + "\n")
    return root


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not all(installed(name) for name in EXAMPLES),
                    reason="the examples are not installed: pip install "
                           "-e examples/iqabench-sharpness -e examples/iqabench-photoset (CI does)")
def test_the_installed_examples_run_a_suite_together(tmp_path):
    registry = PluginRegistry()
    assert registry.get("model", "sharpness").distribution == "iqabench-sharpness"
    assert registry.get("dataset", "photoset").distribution == "iqabench-photoset"
    from iqabench.run.runner import run_suite

    write_photoset(tmp_path / "data" / "photoset")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "examples", "protocol": "single_domain", "num_workers": 0, "bootstrap": 0,
        "efficiency": {"enabled": False}, "test": ["photoset"], "models": [{"name": "sharpness"}],
    }))
    results = run_suite(suite, tmp_path / "out", data_root=str(tmp_path / "data"), registry=registry,
                        progress=False)
    test_set = results["test_sets"][0]
    assert (test_set["split"], test_set["count"]) == ("test", len(TEST))  # photoset has a test split: used
    pair = results["results"][0]
    assert pair["status"] == "ok" and pair["scored"] == len(TEST)
    assert pair["metrics"]["srcc"]["value"] == pytest.approx(1.0)  # blur lowers both the rating and sharpness


def test_the_dataset_example_loads_through_entry_points(tmp_path, monkeypatch):
    """As pip would install it: its own entry_points metadata, the package importable."""
    dist = tmp_path / "site" / "iqabench_photoset_fake-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: iqabench-photoset-fake\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[iqabench]\nphotoset = iqabench_photoset\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(REPO / "examples" / "iqabench-photoset"))
    importlib.invalidate_caches()
    sys.modules.pop("iqabench_photoset", None)
    registry = PluginRegistry()
    from iqabench import create_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = create_dataset("photoset", root=write_photoset(tmp_path / "photoset"), registry=registry)
        index = dataset.load()
    assert [r.image for r in index.records] == [f"images/{n}" for n, _, _ in PHOTOS]
    low, high = 9.0 - 1.4 * 5, 9.0  # the observed range: rescaled to [1, 5] from it
    assert [r.mos for r in index.records] == pytest.approx([1 + 4 * (m - low) / (high - low) for _, m, _ in PHOTOS])
    assert [r.image.split("/")[1] for r in index.split("test")] == list(TEST)
    assert dataset.test_split() == "test" and index.provenance.nominal_range == (0, 10)
    assert index.records[0].std_raw == 0.8
