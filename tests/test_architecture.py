"""The core's contracts: what it reads from plugins is declared, built once, recorded faithfully (issue 14)."""

from __future__ import annotations

import ast
import types
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from iqabench import Model, Score, hookimpl
from iqabench.errors import UnknownNameError
from iqabench.registry.discovery import PluginError, PluginRegistry, default_registry
from iqabench.registry.options import OptionValueError
from tests.helpers import Brightness, GradedSet, make_graded_root, registry_with

REPO = Path(__file__).resolve().parent.parent


def test_a_class_without_a_name_is_skipped_and_every_other_lookup_still_works():
    class Nameless(Brightness):
        """A third-party model that forgot its name."""

        name = None

    plugin = types.SimpleNamespace(iqabench_models=hookimpl(lambda: [Nameless, Brightness]),
                                   iqabench_datasets=hookimpl(lambda: [GradedSet]))
    registry = PluginRegistry(load_entry_points=False)
    registry.register(plugin, name="sloppy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert registry.names("model") == ["brightness"]
        assert registry.names("dataset") == ["graded"]
    assert any("sloppy" in str(w.message) and "no `name`" in str(w.message) for w in caught)
    assert "no `name`" in registry.load_failures["sloppy"]


def test_a_misspelled_hook_is_an_error_naming_the_plugin_and_the_hook():
    plugin = types.SimpleNamespace(iqabench_model=hookimpl(lambda: [Brightness]))
    registry = PluginRegistry(load_entry_points=False)
    with pytest.raises(PluginError, match=r"'typo' implements iqabench_model.*Did you mean 'iqabench_models'"):
        registry.register(plugin, name="typo")


def test_a_class_of_the_wrong_kind_is_refused_with_its_plugin_named():
    plugin = types.SimpleNamespace(iqabench_datasets=hookimpl(lambda: [Brightness]))
    registry = PluginRegistry(load_entry_points=False)
    registry.register(plugin, name="mixed-up")
    with pytest.warns(RuntimeWarning, match="mixed-up.*not a subclass of iqabench.Dataset"):
        assert registry.names("dataset") == []


def test_every_built_in_plugin_records_its_distribution_and_version():
    from importlib.metadata import version

    entry = default_registry().get("model", "niqe")
    assert (entry.distribution, entry.version) == ("iqabench", version("iqabench"))
    assert entry.provenance()["class"].endswith("NIQE")


def test_built_in_plugins_derive_config_from_their_signature():
    registry = default_registry()
    for kind in ("model", "trainer"):
        for entry in registry.entries(kind):
            assert "config" not in vars(entry.cls), f"{entry.name} writes config() by hand; use runtime_config()"


def test_a_parameter_the_plugin_does_not_store_is_reported_by_name():
    class Forgetful(Brightness):
        name = "forgetful"

        def __init__(self, *, gain: float = 2.0, device: str = "cpu", dtype: str = "float32") -> None:
            super().__init__(device=device, dtype=dtype)

    with pytest.raises(AttributeError, match="'gain' but does not store it as `self.gain`"):
        Forgetful().config()
    assert Brightness(offset=1.5).config() == {"offset": 1.5, "device": "cpu", "dtype": "float32"}


def test_option_values_are_checked_against_the_constructor_annotations():
    from iqabench.registry.factory import create_model

    with pytest.raises(OptionValueError, match=r"model 'niqe': option 'block_size' must be int .*got 'abc'"):
        create_model("niqe", block_size="abc")
    with pytest.raises(OptionValueError, match="must be float"):
        create_model("brightness", registry=registry_with(Brightness), offset=True)
    with pytest.raises(UnknownNameError, match="no option 'blok_size'.*block_size"):
        create_model("niqe", blok_size=96)
    assert create_model("brightness", registry=registry_with(Brightness), offset=2).model.offset == 2.0


def test_comma_separated_flags_fill_list_and_tuple_options():
    from iqabench.registry.options import check_options, parse_option_flags

    class Ranged:
        def __init__(self, *, rescale_range: tuple[float, float] | None = None) -> None:
            self.rescale_range = rescale_range

    options = parse_option_flags(["rescale_range=3.9,88.4"])
    assert check_options(Ranged, options, "dataset 'x'") == {"rescale_range": (3.9, 88.4)}
    with pytest.raises(OptionValueError, match="rescale_range"):
        check_options(Ranged, parse_option_flags(["rescale_range=low,high"]), "dataset 'x'")


class Squeezing(Brightness):
    """Declares its preprocessing from an option, as CLIP-IQA does with `resize`."""

    name = "squeezing"

    def __init__(self, *, resize: int | None = None, device: str = "cpu", dtype: str = "float32") -> None:
        super().__init__(device=device, dtype=dtype)
        self.resize = resize
        self.traits = replace(self.traits, preprocessing="full-resolution" if resize is None else "resize")


def _run(tmp_path: Path, registry: PluginRegistry, **suite) -> dict:
    from iqabench.run.runner import run_suite

    make_graded_root(tmp_path / "data" / "graded")
    spec = {"name": "t", "protocol": "single_domain", "num_workers": 0, "bootstrap": 0,
            "efficiency": {"enabled": False}, "test": [{"dataset": "graded", "split": "all"}], **suite}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return run_suite(path, tmp_path / "out", data_root=str(tmp_path / "data"), registry=registry, progress=False)


def test_results_report_the_split_asked_for_and_what_each_model_really_did(tmp_path):
    results = _run(tmp_path, registry_with(Squeezing), models=[{"name": "squeezing", "options": {"resize": 64}}])
    assert results["test_sets"][0]["split"] == "all" and results["test_sets"][0]["count"] == 12
    model = results["models"][0]
    assert model["preprocessing"] == "resize"  # the instance's, not the class default
    assert model["config"] == {"resize": 64, "device": "cpu", "dtype": "float32"}
    assert model["plugin"]["plugin"] == "test-plugin"


def test_ctrl_c_during_scoring_stops_the_run_instead_of_being_recorded_as_a_failure(tmp_path):
    class Interrupted(Brightness):
        name = "interrupted"

        def score_batch(self, items):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, registry_with(Interrupted), models=[{"name": "interrupted"}])
    assert not (tmp_path / "out" / "failures").exists()


def test_a_third_party_model_declares_what_the_efficiency_study_needs(tmp_path, monkeypatch):
    import iqabench.registry.discovery
    from iqabench.efficiency.bench import BenchModel, BenchSettings, make_jpegs, measure_model

    class Staged(Model):
        """A third-party model with a two-stage forward pass and a known released size."""

        name = "staged"
        score_range = (0.0, 255.0)

        def preprocessor(self):
            return _tensor_mean

        @classmethod
        def released_parameters(cls) -> int:
            return 1000

        def timing_stages(self):
            return {"mean": lambda batch: batch.mean(dim=1), "shift": lambda values: values + 1}

        def score_batch(self, items):
            return [Score.ok(float(v.mean())) for v in items]

    monkeypatch.setattr(iqabench.registry.discovery, "_DEFAULT", registry_with(Staged))
    settings = BenchSettings(batch_sizes=(2,), device="cpu", dtype="float32", images=2, warmup=0, repeats=1,
                             num_workers=0)
    record = measure_model(BenchModel(name="staged"), settings, make_jpegs(tmp_path, 2, (32, 24)))
    assert record["error"] is None and record["released_parameters"] == 1000 and record["parameters"] == 0
    assert set(record["rows"][0]["stage_ms_per_image"]) == {"mean", "shift"}


def _tensor_mean(image):
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0))


def test_the_core_names_no_built_in_plugin():
    plugin_names = set()
    for kind in ("model", "dataset", "trainer", "converter"):
        plugin_names.update(default_registry().names(kind))
    for path in sorted((REPO / "iqabench").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        # keys of the core's own records ({"folder": ...}, source["folder"]) are not plugin names
        docstrings |= {id(key) for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys}
        docstrings |= {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.startswith("iqabench_plugins") for m in modules), f"{path} imports a plugin"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert node.value not in plugin_names, f"{path.name} names the plugin {node.value!r}"


def test_rali_refuses_random_head_options_next_to_a_checkpoint(tmp_path):
    from iqabench.errors import CheckpointError
    from iqabench.registry.factory import create_model

    with pytest.raises(CheckpointError, match="pca_dim=64.*decides its own encoder and head"):
        create_model("rali", checkpoint=str(tmp_path), pca_dim=64)


def test_a_models_counts_are_recorded_per_test_set(tmp_path):
    class Counted(Brightness):
        """Counts bright images, as an MLLM counts out-of-range ratings."""

        name = "counted"

        def __init__(self, **options):
            super().__init__(**options)
            self.bright = 0

        def score_batch(self, items):
            self.bright += sum(v > 128 for v in items)
            return super().score_batch(items)

        def take_counts(self):
            counts, self.bright = {"bright": int(self.bright)}, 0
            return counts

    registry = registry_with(Counted)
    results = _run(tmp_path, registry, models=[{"name": "counted"}],
                   test=[{"dataset": "graded", "split": "train"}, {"dataset": "graded", "split": "test"}])
    from PIL import Image

    from tests.helpers import brightness

    root = tmp_path / "data" / "graded"
    for pair, parity in zip(results["results"], (0, 1)):
        names = [line.split(",")[0] for i, line in enumerate((root / "labels.csv").read_text().splitlines())
                 if i % 2 == parity]
        expected = sum(brightness(Image.open(root / name).convert("RGB")) > 128 for name in names)
        assert pair["meta"]["model_counts"] == {"bright": expected}


def _core_import_graph() -> dict[str, set[str]]:
    """Module -> the iqabench modules it imports, anywhere in its body (imports inside functions count: they
    run too), except those under ``if TYPE_CHECKING:`` (annotations only)."""
    modules = {}
    for path in sorted((REPO / "iqabench").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        annotations_only = {id(child) for node in ast.walk(tree) if isinstance(node, ast.If)
                            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                            for child in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in annotations_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_detection_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_among_core_modules():
    assert _cycles(_core_import_graph()) == []


def test_the_contracts_depend_on_nothing_but_errors():
    """The base classes plugin authors subclass do not pull in the scoring engine, the registry or the runner."""
    graph = _core_import_graph()
    for module, targets in graph.items():
        if module.startswith("iqabench.contracts"):
            outside = {t for t in targets if not t.startswith("iqabench.contracts") and t != "iqabench.errors"}
            assert outside == set(), f"{module} imports {sorted(outside)}"
