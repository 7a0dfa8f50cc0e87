"""Plugin discovery: built-ins, clashes, broken plugins, and a third-party package via entry points."""

import importlib
import sys
import types
import warnings
from pathlib import Path

import pytest

from iqabench import hookimpl
from iqabench.errors import DuplicateNameError, UnknownNameError
from iqabench.registry.discovery import PluginRegistry
from tests.helpers import Brightness, Darkness

REPO = Path(__file__).resolve().parents[1]


def plugin(*models):
    return types.SimpleNamespace(iqabench_models=hookimpl(lambda: list(models)))


def test_builtins_are_registered_through_entry_points():
    registry = PluginRegistry()
    assert {"niqe", "brisque"} <= set(registry.names("model"))
    assert "synthetic" in registry.names("dataset")
    assert registry.get("model", "niqe").plugin == "niqe"


def test_unknown_name_lists_available_and_closest():
    registry = PluginRegistry(load_entry_points=False)
    registry.register(plugin(Brightness, Darkness), name="p")
    with pytest.raises(UnknownNameError) as info:
        registry.model("brigthness")
    message = str(info.value)
    assert "Did you mean 'brightness'" in message and "darkness" in message


def test_two_plugins_with_one_name_is_an_error_naming_both():
    registry = PluginRegistry(load_entry_points=False)
    registry.register(plugin(Brightness), name="first-plugin")
    registry.register(plugin(Brightness), name="second-plugin")
    with pytest.raises(DuplicateNameError, match="first-plugin.*second-plugin"):
        registry.names("model")


def _fake_distribution(tmp_path: Path, name: str, entry_points: str) -> None:
    dist = tmp_path / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)


def test_broken_third_party_plugin_warns_and_harness_keeps_working(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "broken_plugin", "[iqabench]\nbroken = broken_iqabench_plugin_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = PluginRegistry()
    assert any("'broken'" in str(w.message) and "failed to import" in str(w.message) for w in caught)
    assert "broken" in registry.load_failures
    assert "niqe" in registry.names("model")


@pytest.mark.slow
def test_example_package_loads_through_entry_points_and_runs_in_a_suite(tmp_path, monkeypatch):
    """The examples/ package, made importable with its own entry_points metadata, as pip would install it."""
    example = REPO / "examples" / "iqabench-sharpness"
    _fake_distribution(tmp_path, "iqabench_sharpness", "[iqabench]\nsharpness = iqabench_sharpness\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(example))
    importlib.invalidate_caches()
    sys.modules.pop("iqabench_sharpness", None)
    registry = PluginRegistry()
    assert registry.get("model", "sharpness").plugin == "sharpness"

    import yaml

    from iqabench.run.runner import run_suite

    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(
        yaml.safe_dump(
            {
                "name": "example",
                "protocol": "single_domain",
                "num_workers": 0,
                "bootstrap": 0,
                "test": [{"dataset": "synthetic", "split": "test", "options": {"references": ["astronaut", "camera"],
                                                                              "distortions": ["gaussian_blur"]}}],
                "models": [{"name": "sharpness"}],
                "efficiency": {"enabled": False},
            }
        )
    )
    results = run_suite(suite_path, tmp_path / "out", data_root=str(tmp_path / "data"), registry=registry,
                        progress=False)
    pair = results["results"][0]
    assert pair["status"] == "ok" and pair["scored"] == pair["count"] > 0
    # blur lowers the Laplacian variance, and the designed label falls with blur level
    assert pair["metrics"]["srcc"]["value"] > 0.5
