"""The decode workers: whole batches in order, collated by the model, scored there when the model allows it."""

import os

import numpy as np
import pytest
from PIL import Image

from iqabench.contracts.model import Model, ModelTraits, Score
from iqabench.scoring.engine import score_files
from iqabench.scoring.images import ImageReading, load_image
from iqabench.scoring.loader import model_batches
from iqabench_plugins.niqe import NIQE


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Eleven JPEGs of different content (two batches of 4 and one of 3) and a corrupt file among them."""
    folder = tmp_path_factory.mktemp("photos")
    source = Image.open(os.path.join(os.path.dirname(__file__), "data", "niqe", "image1.png")).convert("RGB")
    paths = []
    for index in range(11):
        rng = np.random.default_rng(index)
        noisy = np.clip(np.asarray(source, dtype=np.float64) + rng.normal(0, 2 + index,
                                                                          (source.height, source.width, 3)),
                        0, 255).astype(np.uint8)
        path = folder / f"photo{index:02d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    (folder / "photo05.jpg").write_bytes(b"not a jpeg")
    return paths


class WhereScored(Model):
    """Scores each image with the id of the process that scored it (and its width, to check the order)."""

    name = "where-scored"
    score_range = (0.0, float("inf"))

    def preprocessor(self):
        return _width

    def score_batch(self, items):
        return [Score.ok(width, text=str(os.getpid())) for width in items]


class WhereScoredInWorkers(WhereScored):
    traits = ModelTraits(score_in_workers=True)


def _width(image: Image.Image) -> int:
    return image.width


@pytest.mark.parametrize("workers", [1, 2])
def test_scores_do_not_depend_on_the_number_of_workers(photos, workers):
    # NIQE scores in the workers: every batch of the single-process run, so the values are identical bit for bit.
    model = NIQE()
    alone = [outcome for batch in score_files(model, photos, batch_size=4) for outcome in batch]
    shared = [outcome for batch in score_files(model, photos, batch_size=4, num_workers=workers) for outcome in batch]
    assert [index for index, _ in shared] == list(range(len(photos)))
    assert [(s.value, s.error) for _, s in shared] == [(s.value, s.error) for _, s in alone]
    assert shared[5][1].failed and "photo05.jpg" in shared[5][1].error
    assert sum(not s.failed for _, s in shared) == 10


def test_a_model_that_allows_it_is_scored_in_the_workers_others_here(photos):
    here = [s for batch in score_files(WhereScored(), photos, batch_size=4, num_workers=2) for _, s in batch]
    there = [s for batch in score_files(WhereScoredInWorkers(), photos, batch_size=4, num_workers=2) for _, s in batch]
    assert {s.text for s in here if not s.failed} == {str(os.getpid())}
    assert str(os.getpid()) not in {s.text for s in there if not s.failed}
    assert [s.value for s in here] == [s.value for s in there]  # same order, same images


class Stacked(Model):
    """Collates into one array; a batch holding a negative-mean image raises, so it is scored one by one."""

    name = "stacked"
    score_range = (0.0, 255.0)

    def preprocessor(self):
        return _mean_pixels

    def collator(self):
        return np.stack

    def score_batch(self, items):
        assert isinstance(items, np.ndarray)
        if (items < 0).any():
            raise ValueError("negative pixels")
        return [Score.ok(float(item.mean())) for item in items]


def _mean_pixels(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.resize((8, 8)), dtype=np.float64)
    return -pixels if image.width == 500 else pixels


def test_collated_batch_that_fails_is_scored_image_by_image(tmp_path):
    paths = []
    for index, width in enumerate([64, 500, 80]):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (width, 48), (index * 40, 10, 10)).save(path)
        paths.append(path)
    (scores,) = [[s for _, s in batch] for batch in score_files(Stacked(), paths, batch_size=3, num_workers=1)]
    assert scores[0].value == pytest.approx((0 + 10 + 10) / 3) and scores[2].value == pytest.approx((80 + 20) / 3)
    assert scores[1].failed and "negative pixels" in scores[1].error


def test_jpeg_draft_decodes_at_a_reduced_scale_only_when_allowed(photos):
    full = load_image(photos[0])
    draft = load_image(photos[0], ImageReading(jpeg_draft=True), draft_size=(100, 100))
    not_allowed = load_image(photos[0], ImageReading(), draft_size=(100, 100))
    assert not_allowed.size == full.size
    # libjpeg scales by 1/2, 1/4 or 1/8: the largest reduction that keeps both sides at least 100 pixels
    scale = max(s for s in (1, 2, 4, 8) if full.width // s >= 100 and full.height // s >= 100)
    assert draft.size == (-(-full.width // scale), -(-full.height // scale)) and scale > 1


def test_model_batches_hand_over_collated_inputs_and_errors(photos):
    batches = list(model_batches(Stacked(), photos, batch_size=4, num_workers=1))
    assert [(b.start, b.size) for b in batches] == [(0, 4), (4, 4), (8, 3)]
    assert batches[1].errors.keys() == {1} and batches[1].ready == [0, 2, 3]
    assert batches[1].inputs.shape == (3, 8, 8, 3)
