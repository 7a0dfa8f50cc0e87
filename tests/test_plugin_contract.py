"""The plugin contract is small and checked early (issue 25): the registered class holds metadata and scoring,
the object ``create_model`` returns owns the user API, and each rule a plugin can break is reported by name when
the class is registered (or, for what only an instance shows, when the model is built), not late in a run."""

from __future__ import annotations

import types
import warnings
from dataclasses import replace

import pytest
import torch

from iqabench import Scorer, create_model
from iqabench.api import Model, ModelTraits, Score, hookimpl
from iqabench.errors import PluginError
from iqabench.registry.discovery import PluginRegistry
from tests.differentiable import random_images
from tests.helpers import Brightness, brightness, registry_with


def refused(*classes: type) -> str:
    """The reason the registry gives for skipping the classes (they must all be skipped)."""
    registry = registry_with(*classes)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert registry.names("model") == []
    return registry.load_failures["test-plugin"]


def test_create_model_returns_the_user_api_and_the_contract_has_none_of_it():
    scorer = create_model("brightness", registry=registry_with(Brightness))
    assert isinstance(scorer, Scorer) and isinstance(scorer.model, Brightness)
    for member in ("__call__", "last_errors", "last_scores", "to_reward", "as_loss"):
        assert member not in dir(Model), member
    image = random_images(1)[0]
    assert float(scorer(image)[0]) == pytest.approx(brightness(image), abs=1e-4)
    assert (scorer.name, scorer.score_range, scorer.lower_better) == ("brightness", (0.0, 255.0), False)
    with pytest.raises(AttributeError, match=r"scorer.model.offset"):
        scorer.offset  # noqa: B018  (a plugin attribute is on the plugin object, and the message says so)
    with pytest.raises(AttributeError):
        scorer.calls = 0  # a typo'd or plugin attribute is not silently set on the scorer


def test_declarations_set_as_separate_class_attributes_are_refused_with_the_traits_spelling():
    class OldStyle(Brightness):
        name = "old-style"
        differentiable = True
        score_in_workers = True

    reason = refused(OldStyle)
    assert "sets `differentiable`, `score_in_workers` as a class attribute" in reason
    assert "traits = ModelTraits(differentiable=True, score_in_workers=True)" in reason
    assert "rule: declarations in `traits`" in reason


def test_a_model_that_does_not_accept_device_and_dtype_is_refused_naming_the_rule():
    class NoDevice(Model):
        name = "no-device"
        score_range = (0.0, 1.0)

        def __init__(self, *, gain: float = 1.0) -> None:
            self.gain = gain

        def score_batch(self, items):
            return [Score.ok(0.5) for _ in items]

    reason = refused(NoDevice)
    assert "does not accept `device` and `dtype`" in reason and "every model accepts device and dtype" in reason


def test_an_option_never_stored_under_its_name_is_refused_at_registration():
    class Forgetful(Brightness):
        name = "forgetful"

        def __init__(self, *, gain: float = 2.0, window: int = 3, device: str = "cpu", dtype: str = "float32") -> None:
            super().__init__(device=device, dtype=dtype)
            self.window = window  # gain is used, never stored: results could not record it

    reason = refused(Forgetful)
    assert "never stores 'gain'" in reason and "`self.gain = gain`" in reason and "window" not in reason
    assert "rule: every __init__ option is stored as self.<name>" in reason


def test_options_stored_by_a_helper_method_or_a_property_count_as_stored():
    class Helper(Brightness):
        name = "helper"

        def __init__(self, *, gain: float = 2.0, level: int = 1, device: str = "cpu", dtype: str = "float32") -> None:
            super().__init__(device=device, dtype=dtype)
            self._setup(gain)
            self._level = level

        def _setup(self, gain: float) -> None:
            self.gain = gain

        @property
        def level(self) -> int:
            return self._level

    registry = registry_with(Helper)
    assert registry.names("model") == ["helper"]
    assert create_model("helper", registry=registry, gain=3.0).config()["gain"] == 3.0


def test_options_stored_under_computed_names_are_checked_on_the_built_model():
    """setattr(self, key, value) in a loop (defaults from a preset) cannot be read from the source: the class is
    registered, and a name the loop forgets is reported when the model is built, by config()."""

    class Preset(Brightness):
        name = "preset"

        def __init__(self, *, gain: float | None = None, bias: float | None = None, device: str = "cpu",
                     dtype: str = "float32") -> None:
            super().__init__(device=device, dtype=dtype)
            for key, value in {"gain": gain}.items():  # bias forgotten
                setattr(self, key, 2.0 if value is None else value)

    registry = registry_with(Preset)
    assert registry.names("model") == ["preset"]
    with pytest.raises(PluginError, match=r"takes the option 'bias' but does not store it as `self.bias`"):
        create_model("preset", registry=registry)


def test_a_differentiable_declaration_needs_a_tensor_path_and_new_token_options_must_exist():
    class Claims(Brightness):
        name = "claims"
        traits = ModelTraits(differentiable=True)

    class Talks(Brightness):
        name = "talks"
        traits = ModelTraits(generative=True, new_tokens_options=("max_tokens",))

    reason = refused(Claims, Talks)
    assert "declares `differentiable` but has no `score_pixels` (rule: a differentiable model has a tensor path)" \
        in reason
    assert "names max_tokens in `traits.new_tokens_options` but __init__ takes no such option" in reason


def test_traits_are_typed_values():
    with pytest.raises(ValueError, match="preprocessing is one of full-resolution, resize, crop, pad"):
        ModelTraits(preprocessing="squash")
    with pytest.raises(TypeError, match="differentiable is True or False"):
        ModelTraits(differentiable="yes")


def _grey_lambda_model():
    class Unpicklable(Brightness):
        name = "unpicklable"

        def preprocessor(self):
            return lambda image: brightness(image)

    return Unpicklable


def test_a_preprocessor_that_cannot_reach_the_workers_is_refused_when_the_model_is_built():
    registry = registry_with(_grey_lambda_model())
    with pytest.raises(PluginError, match=r"preprocessor\(\) returned <function .*cannot be pickled.*"
                                          r"rule: a picklable preprocessor"):
        create_model("unpicklable", registry=registry)


def test_an_instance_setting_an_old_declaration_attribute_is_refused_when_built():
    class Refines(Brightness):
        name = "refines"

        def __init__(self, *, device: str = "cpu", dtype: str = "float32") -> None:
            super().__init__(device=device, dtype=dtype)
            self.differentiable = False

    with pytest.raises(PluginError, match=r"sets self.differentiable.*self.traits = dataclasses.replace"):
        create_model("refines", registry=registry_with(Refines))


def test_an_instance_refines_its_traits_with_replace():
    class Grey(Brightness):
        name = "grey"

        def __init__(self, *, full: bool = True, device: str = "cpu", dtype: str = "float32") -> None:
            super().__init__(device=device, dtype=dtype)
            self.full = full
            self.traits = replace(self.traits, preprocessing="full-resolution" if full else "resize")

    scorer = create_model("grey", registry=registry_with(Grey), full=False)
    assert scorer.model.traits.preprocessing == "resize" and Grey.traits.preprocessing == "full-resolution"


def test_a_hook_without_hookimpl_is_reported_instead_of_ignored():
    def iqabench_models():
        return [Brightness]

    registry = PluginRegistry(load_entry_points=False)
    with pytest.raises(PluginError, match=r"'forgot' defines iqabench_models\(\) without @hookimpl.*never call it"):
        registry.register(types.SimpleNamespace(iqabench_models=iqabench_models), name="forgot")

    def iqabench_dataset():  # misspelled too: the message points at the hook it resembles
        return []

    with pytest.raises(PluginError, match=r"iqabench_dataset\(\) without @hookimpl.*Did you mean 'iqabench_datasets'"):
        registry.register(types.SimpleNamespace(iqabench_dataset=iqabench_dataset), name="forgot-twice")
    registry.register(types.SimpleNamespace(iqabench_models=hookimpl(iqabench_models)), name="decorated")
    assert registry.names("model") == ["brightness"]


def test_losses_and_rewards_take_what_create_model_returns():
    from iqabench import ImageReward

    scorer = create_model("brightness", registry=registry_with(Brightness))
    reward = ImageReward(scorer)
    pixels = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(reward(pixels), torch.full((2,), 128.0 / 255.0), atol=1e-3)
    assert scorer.last_errors == [None, None]  # the user's scorer, not a copy, holds the reasons
