"""Differentiable IQA models as losses: gradients that finite differences confirm, steps that raise the score.

Every model here is built by ``create_model(name, as_loss=True)``; see
``tests/differentiable.py`` for the offline stand-ins (the real code paths on
tiny or partly random weights).
"""

from __future__ import annotations

import pytest
import torch

from iqabench import Scorer, create_model
from iqabench.errors import IQABenchError
from iqabench.registry.discovery import default_registry
from iqabench.scoring.loss import QualityLoss
from iqabench.scoring.pixels import to_pil_images
from tests.differentiable import DIFFERENTIABLE, mid_grey_photo, model_options
from tests.test_clipiqa import weights  # noqa: F401  (the tiny open_clip fixture)

#: central-difference step per model: small enough for RALI's piecewise-linear ReLU6 network, large enough to rise
#: above float32 rounding for the tiny random CLIP and Qwen2.5-VL whose gradients are small
STEPS = {"rali": 1e-3, "clip-iqa": 5e-2, "clip-iqa+": 5e-2, "q-align": 1e-2}


@pytest.fixture(scope="module")
def losses(weights, tmp_path_factory) -> dict[str, QualityLoss]:  # noqa: F811
    folder = tmp_path_factory.mktemp("losses")
    return {name: create_model(name, as_loss=True, **model_options(name, weights, folder / name))
            for name in DIFFERENTIABLE}


def test_the_registry_names_the_differentiable_models():
    assert default_registry().differentiable_models() == list(DIFFERENTIABLE)


@pytest.mark.slow
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradients_agree_with_finite_differences(losses, name):
    """Directional derivatives: along the gradient, and along a direction half off it (a wrong or missing part
    of the gradient would show there); central differences in float32 at the step of ``STEPS``."""
    loss = losses[name]
    x0 = mid_grey_photo()
    x = x0.clone().requires_grad_(True)
    loss.scores(x).sum().backward()
    gradient = x.grad
    norm = float(gradient.norm())
    assert norm > 0 and torch.isfinite(gradient).all()
    unit = gradient / norm
    other = torch.randn(gradient.shape, generator=torch.Generator().manual_seed(0))
    other = other - (other * unit).sum() * unit
    mixed = (unit + other / other.norm()) / 2**0.5
    eps = STEPS[name]
    for direction in (unit, mixed):
        with torch.no_grad():
            finite = float(loss.scores(x0 + eps * direction) - loss.scores(x0 - eps * direction)) / (2 * eps)
        analytic = float((gradient * direction).sum())
        assert finite == pytest.approx(analytic, abs=0.03 * norm), (name, finite, analytic, norm)


@pytest.mark.slow
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_an_optimiser_step_on_the_pixels_raises_the_score(losses, name):
    loss = losses[name]
    x = mid_grey_photo().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=0.01)
    before = loss(x)
    before.backward()
    optimiser.step()
    after = loss(x)
    assert float(after.detach()) < float(before.detach())
    # the metric (no gradient, its own tensor path) sees the raised score too
    model = Scorer(loss.model)
    assert float(model(x.detach().clamp(0, 1))) > float(model(mid_grey_photo()))


@pytest.mark.slow
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_the_loss_is_one_minus_the_score_mapped_onto_0_1(losses, name):
    """By hand: (score - low) / (high - low) over the model's documented range; all four are higher-better."""
    loss, x = losses[name], torch.cat([mid_grey_photo(), mid_grey_photo().flip(-1)])
    model = Scorer(loss.model)
    low, high = model.score_range
    scores = model(x)
    expected = 1 - (scores - low) / (high - low)
    assert not model.lower_better
    assert torch.allclose(QualityLoss(model, reduction="none")(x).detach(), expected, atol=1e-5)
    assert torch.allclose(model.as_loss("none")(x).detach(), expected, atol=1e-5)
    assert float(loss(x)) == pytest.approx(float(expected.mean()), abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_tensor_path_scores_match_the_pil_path(losses, name):
    """Same images as 8-bit PIL and as tensors: scores within 0.5% of the model's range (the preprocessing differs
    by at most about a grey level, tests/test_pixels.py)."""
    model = Scorer(losses[name].model)
    x = torch.cat([mid_grey_photo(96, 80), mid_grey_photo(96, 80).flip(-2)])
    x = (x * 255).round() / 255  # exactly representable in 8 bits: both paths start from the same pixels
    tensor_scores, pil_scores = model(x), model(to_pil_images(x))
    low, high = model.score_range
    assert torch.allclose(tensor_scores, pil_scores, atol=0.005 * (high - low), rtol=0), (tensor_scores, pil_scores)


def test_the_loss_holds_the_model_frozen_and_out_of_the_callers_modules(losses):
    loss = losses["rali"]
    assert list(loss.parameters()) == [] and "rali" in repr(loss)
    container = torch.nn.Sequential(torch.nn.Identity(), loss).train()
    assert container.training and not loss.model.image_encoder.training
    assert not any(p.requires_grad for p in loss.model.image_encoder.parameters())


@pytest.mark.slow
def test_random_init_rali_is_a_loss_whose_gradient_reaches_the_pixels():
    """random_init on the offline pair: the mechanics work (finite gradient of the right shape); its random
    EfficientNet saturates, so its gradients are tiny: pretrained_encoder=true gives a real encoder's."""
    loss = create_model("rali", as_loss=True, random_init=True, encoder="efficientnet-minilm")
    x = mid_grey_photo().requires_grad_(True)
    loss(x).backward()
    assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()


def test_pretrained_encoder_goes_with_random_init_only():
    from iqabench.errors import CheckpointError

    with pytest.raises(CheckpointError, match="pretrained_encoder=true goes with random_init=true"):
        create_model("rali", pretrained_encoder=True, encoder="efficientnet-minilm")
    with pytest.raises(CheckpointError, match="pretrained_encoder=True.*decides its own encoder"):
        create_model("rali", checkpoint="somewhere", pretrained_encoder=True)


@pytest.mark.parametrize(("name", "options"), [
    ("niqe", {}),
    ("brisque", {}),
    ("q-insight", {"checkpoint": "tiny-random"}),
    ("visualquality-r1", {"checkpoint": "tiny-random"}),
])
def test_models_without_gradients_say_so_and_name_those_with(name, options):
    with pytest.raises(IQABenchError) as error:
        create_model(name, as_loss=True, **options)
    message = str(error.value)
    assert f"model {name!r} is not differentiable" in message
    assert "Differentiable models: clip-iqa, clip-iqa+, q-align, rali." in message


def test_bad_reductions_and_inputs_are_clear_errors(losses):
    with pytest.raises(IQABenchError, match="reduction 'avg'"):
        QualityLoss(losses["rali"].model, reduction="avg")
    with pytest.raises(IQABenchError, match=r"channels-first.*x.permute\(0, 3, 1, 2\)"):
        losses["rali"](torch.rand(1, 64, 64, 3))
