"""NIQE against the LIVE MATLAB release's published numbers and against hand computations."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy.special import gamma

from iqabench.registry import default_registry
from iqabench_plugins.niqe import NIQE
from iqabench_plugins.niqe.matlab import gaussian_window, imresize, rgb2gray_uint8
from iqabench_plugins.niqe.nss import fit_aggd, fit_ggd

DATA = Path(__file__).parent / "data" / "niqe"

# MATLAB example.m of the LIVE release on its own example images (utlive/niqe image1.bmp, image2.bmp,
# stored losslessly as PNG), as reported in scikit-video issue #116.
MATLAB_NIQE = {"image1.png": 5.0290, "image2.png": 17.8659}


@pytest.fixture(scope="module")
def niqe() -> NIQE:
    return NIQE()


@pytest.mark.parametrize("filename", sorted(MATLAB_NIQE))
def test_reproduces_matlab_release(niqe, filename):
    image = Image.open(DATA / filename).convert("RGB")
    (score,) = niqe.score([image])
    assert not score.failed, score.error
    assert score.value == pytest.approx(MATLAB_NIQE[filename], rel=1e-3)


def test_blur_raises_the_score(niqe):
    image = Image.open(DATA / "image1.png").convert("RGB")
    sharp, blurred = niqe.score([image, image.filter(ImageFilter.GaussianBlur(3))])
    assert blurred.value > sharp.value + 1


def test_rgb2gray_matches_matlab_weights_and_rounding():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200], [255, 255, 255]]], dtype=np.uint8)
    # 255*0.298936 = 76.23 -> 76; 255*0.587043 = 149.70 -> 150; 255*0.114021 = 29.08 -> 29;
    # 29.894 + 88.056 + 22.804 = 140.75 -> 141; the weights sum to 1, so white stays 255.
    assert rgb2gray_uint8(pixels).tolist() == [[76, 150, 29, 141, 255]]
    assert rgb2gray_uint8(Image.fromarray(pixels)).dtype == np.uint8


def test_gaussian_window_is_fspecial():
    window = gaussian_window()
    expected = np.exp(-(np.arange(-3, 4) ** 2) / (2 * (7 / 6) ** 2))
    np.testing.assert_allclose(window, expected / expected.sum())
    assert np.outer(window, window).sum() == pytest.approx(1.0)


def test_imresize_half_uses_matlab_antialiased_cubic_weights():
    # h(x) = 0.5 * cubic(x / 2) (Keys, a = -0.5) at distances 4.5, 3.5, ..., -4.5 from an output sample,
    # worked out by hand: cubic(1.75) = -0.0234375, cubic(1.25) = -0.0703125, cubic(0.75) = 0.2265625,
    # cubic(0.25) = 0.8671875, cubic(2.25) = 0.
    expected = np.array([0, -0.01171875, -0.03515625, 0.11328125, 0.43359375])
    expected = np.concatenate([expected, expected[::-1]])
    row = np.zeros((1, 40))
    for offset in range(10):
        row[:] = 0
        row[0, 8 + offset] = 1.0  # output sample 7 (1-based) sits at input 13.5, taps 9..18 (1-based)
        column = imresize(np.repeat(row, 4, axis=0), 0.5)[:, 6]
        np.testing.assert_allclose(column, expected[offset], atol=1e-15)


def test_imresize_half_reflects_at_the_border_and_keeps_ramps():
    ramp = np.tile(np.arange(1.0, 17.0), (4, 1))
    half = imresize(ramp, 0.5)[0]
    # Away from the border the cubic kernel reproduces linear functions: the mean of each input pair.
    np.testing.assert_allclose(half[2:6], [5.5, 7.5, 9.5, 11.5], atol=1e-12)
    # First sample: taps at inputs -3..6 (1-based) mirror to 4 3 2 1 1 2 3 4 5 6.
    weights = np.array([0, -0.01171875, -0.03515625, 0.11328125, 0.43359375])
    weights = np.concatenate([weights, weights[::-1]])
    assert half[0] == pytest.approx(weights @ np.array([4, 3, 2, 1, 1, 2, 3, 4, 5, 6]))
    assert imresize(np.full((7, 9), 42.0), 0.5).shape == (4, 5)


def test_aggd_fit_recovers_known_distributions():
    rng = np.random.default_rng(0)
    gaussian = rng.normal(0, 2.0, size=400_000)
    laplacian = rng.laplace(0, 1.0, size=400_000)
    shape, left, right = fit_aggd(np.stack([gaussian, laplacian]))
    assert shape == pytest.approx([2.0, 1.0], abs=0.03)
    # A symmetric distribution has equal one-sided standard deviations, the full std for a Gaussian,
    # sqrt(2) * scale for a Laplacian.
    np.testing.assert_allclose(left, [2.0, np.sqrt(2)], rtol=0.01)
    np.testing.assert_allclose(right, [2.0, np.sqrt(2)], rtol=0.01)


def test_ggd_fit_recovers_shape_and_variance():
    rng = np.random.default_rng(1)
    shape, variance = fit_ggd(rng.normal(0, 3.0, size=400_000))
    assert shape == pytest.approx(2.0, abs=0.03)
    assert variance == pytest.approx(9.0, rel=0.01)
    # For a GGD with shape 1 (Laplacian) E[x^2] / E|x|^2 = G(1)G(3)/G(2)^2 = 2.
    shape, _ = fit_ggd(rng.laplace(0, 1.0, size=400_000))
    assert gamma(1 / shape) * gamma(3 / shape) / gamma(2 / shape) ** 2 == pytest.approx(2.0, rel=0.02)


def test_aggd_fit_follows_matlab_on_one_sided_samples():
    # mean([]) is NaN in MATLAB and min() over an all-NaN vector returns position 1 (shape 0.2).
    shape, left, right = fit_aggd(np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert shape[0] == pytest.approx(0.2)
    assert np.isnan(left[0])
    assert right[0] == pytest.approx(np.sqrt(7.5))


def test_too_small_or_flat_images_fail_with_a_reason(niqe):
    small, flat = niqe.score([Image.new("RGB", (100, 100), (90, 30, 10)), Image.new("RGB", (288, 192), (7, 7, 7))])
    assert small.failed and "at least two whole 96x96 blocks" in small.error
    assert flat.failed and "undefined" in flat.error


def test_smallest_accepted_image_is_two_blocks(niqe):
    rng = np.random.default_rng(2)
    texture = Image.fromarray(rng.integers(0, 256, size=(96, 192, 3), dtype=np.uint8))
    (score,) = niqe.score([texture])
    assert not score.failed and score.value > 0


def test_model_contract(niqe):
    assert NIQE.lower_better is True
    assert NIQE.preprocessing == "full-resolution"
    assert niqe.num_parameters() == 36 + 36 * 36
    assert niqe.config()["gray"] == "matlab-rgb2gray-uint8"
    assert pickle.loads(pickle.dumps(niqe.preprocessor())) is rgb2gray_uint8
    assert default_registry().model("niqe") is NIQE


def test_odd_block_size_is_rejected():
    with pytest.raises(ValueError, match="even"):
        NIQE(block_size=95)


def test_reports_the_cpu_whatever_device_is_asked():
    # The computation is NumPy float64 on the CPU; the efficiency table reads model.device/dtype.
    model = NIQE(device="cuda", dtype="bfloat16")
    assert (model.device, model.dtype) == ("cpu", "float64")
    assert model.config()["device"] == "cpu"
