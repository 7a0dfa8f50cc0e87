"""The contract every IQA model plugin fulfils: metadata, declarations and scoring.

A model turns decoded images into scores. Scoring is split in two so that the
runner can do the expensive part of input preparation (decode, resize, crop)
in worker processes while the model keeps the device busy:

* :meth:`Model.preprocessor` returns a picklable callable, run in the workers,
  that maps a decoded RGB ``PIL.Image`` to whatever the model consumes;
* :meth:`Model.collator` returns a picklable callable, also run in the
  workers, that joins a batch's prepared inputs (by default: the list itself;
  RALI stacks uint8 pixels into one tensor that the loader pins);
* :meth:`Model.score_batch` scores such a batch.

:meth:`Model.score` chains them for callers that hold PIL images. What the
harness may do with a model (score it in the decode workers, use it as a loss,
ask it for texts...) is declared in one typed value, :class:`ModelTraits`.

This class is what a plugin registers; it is not what users call.
``create_model`` wraps the model in a :class:`iqabench.scoring.scorer.Scorer`,
which owns the user API (``scorer(inputs)``, ``last_errors``, ``to_reward``,
``as_loss``). The rules of this contract that can be checked without building
the model are checked when the class is registered
(:mod:`iqabench.contracts.rules`), the others when ``create_model`` builds it.

A model that cannot score an image returns :meth:`Score.failure` for it. It
never substitutes a default, random or mean value: failures are counted and
shown in the leaderboards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from iqabench.contracts.params import constructor_params

if TYPE_CHECKING:
    import torch
    from PIL import Image

Preprocessing = Literal["full-resolution", "resize", "crop", "pad"]


@dataclass(frozen=True)
class Score:
    """One image's outcome: a value, or the reason there is none."""

    value: float | None
    error: str | None = None
    text: str | None = None

    @classmethod
    def ok(cls, value: float, text: str | None = None) -> Score:
        return cls(value=float(value), error=None, text=text)

    @classmethod
    def failure(cls, error: str, text: str | None = None) -> Score:
        return cls(value=None, error=error, text=text)

    @property
    def failed(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class ModelTraits:
    """What a model declares about itself, in one typed value (scikit-learn's estimator tags).

    The class sets its declaration (``traits = ModelTraits(differentiable=True)``);
    an instance whose options change one refines it in ``__init__``
    (``self.traits = dataclasses.replace(self.traits, differentiable=False)``).
    The core reads these fields and nothing else to decide how to run a model.
    """

    #: what the model does to an image before it sees it (results and the efficiency table show it)
    preprocessing: Preprocessing = "full-resolution"
    #: :meth:`Model.score_pixels` is differentiable with respect to the pixels: the model can then be a loss
    #: (``create_model(name, as_loss=True)``) and scores tensors without a round trip through 8-bit images
    differentiable: bool = False
    #: ``score_batch`` is CPU work whose result depends only on its inputs (no device, no random numbers, no
    #: counts kept in the model): the harness then scores in the decode worker processes, so every core is used
    #: and the scores do not depend on the number of workers. The model is sent to the workers (inherited when
    #: they fork, pickled when they spawn)
    score_in_workers: bool = False
    #: the model writes text (reasoning MLLMs): it can describe images (``iqabench describe``)
    generative: bool = False
    #: scores depend on random numbers drawn while scoring (sampled decoding, Monte-Carlo dropout). Each batch is
    #: seeded from the suite's seed and its place in the test set, so a run reuses the predictions of such a model
    #: (and of every ``generative`` one) only for the same seed and batch size
    samples: bool = False
    #: options that set how many tokens a generative model writes; an efficiency study fixes them all
    new_tokens_options: tuple[str, ...] = ()
    #: the weights are random (an architecture built for timing): its scores mean nothing
    random_weights: bool = False

    def __post_init__(self) -> None:
        if self.preprocessing not in get_args(Preprocessing):
            raise ValueError(f"ModelTraits.preprocessing is one of {', '.join(get_args(Preprocessing))}, "
                             f"not {self.preprocessing!r}")
        for field in ("differentiable", "score_in_workers", "generative", "samples", "random_weights"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"ModelTraits.{field} is True or False, not {getattr(self, field)!r}")
        options = self.new_tokens_options
        if not (isinstance(options, tuple) and all(isinstance(option, str) for option in options)):
            raise TypeError(f"ModelTraits.new_tokens_options is a tuple of option names, not {options!r}")


def identity(image: Image.Image) -> Image.Image:
    return image


class Model(ABC):
    """Base class of IQA models.

    Subclasses set the metadata below and take their parameters as explicit
    keyword arguments of ``__init__`` (with the paper's defaults), plus
    ``device`` and ``dtype`` which every model accepts. Each parameter is stored
    unchanged under its own name (``self.block_size = block_size``), so that
    :meth:`config` can record it (scikit-learn's ``get_params`` convention).
    The registry checks both rules when the class is registered.

    Everything the harness needs to know about a model is declared here with a
    default: the core reads these attributes and methods and nothing else.
    """

    #: registry name, e.g. ``"niqe"``
    name: ClassVar[str]
    #: True when a lower score means better quality (NIQE, BRISQUE)
    lower_better: ClassVar[bool] = False
    #: the range of the model's own scores, as documented by its authors
    score_range: ClassVar[tuple[float, float]]
    #: name of the trainer that writes checkpoints this model loads, if any
    trainer: ClassVar[str | None] = None
    #: the model's declarations; an instance may refine them from its options (see :class:`ModelTraits`)
    traits: ModelTraits = ModelTraits()

    def __init__(self, *, device: str = "cpu", dtype: str = "float32") -> None:
        self.device = device
        self.dtype = dtype

    def preprocessor(self) -> Callable[[Image.Image], Any]:
        """A picklable callable run in decode workers; by default the PIL image itself."""
        return identity

    def collator(self) -> Callable[[list[Any]], Any]:
        """A picklable callable run in decode workers that joins prepared inputs into what :meth:`score_batch`
        takes; by default the list itself.

        ``list(collated)`` must give the inputs back one by one (a list and a stacked tensor do): a batch that
        fails is scored again image by image.
        """
        return list

    def decode_size(self) -> tuple[int, int] | None:
        """The smallest (width, height) the preprocessor needs, or ``None`` for the full image.

        Where a suite allows JPEG draft decoding (``preprocessing: {jpeg_draft: true}``), JPEGs are decoded
        at a reduced scale that keeps them at least this large.
        """
        return None

    @abstractmethod
    def score_batch(self, items: Sequence[Any]) -> list[Score]:
        """Score prepared inputs, as :meth:`collator` joined them; one :class:`Score` per input, in order."""

    def score(self, images: Sequence[Image.Image]) -> list[Score]:
        """Score decoded RGB images."""
        prepare = self.preprocessor()
        return self.score_batch(self.collator()([prepare(image) for image in images]))

    def score_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of float pixels ``[B, 3, H, W]`` in [0, 1] on the model's device: the tensor path.

        Preprocessing (resize, crop, normalisation) runs in torch, matching the
        PIL path within a tolerance the model documents, so a model whose traits
        say ``differentiable`` passes gradients back to ``pixels``. It runs
        under whatever grad mode the caller chose; the pixels were checked by
        the caller (:func:`iqabench.scoring.pixels.as_pixel_batch`). Models
        without a tensor path do not override it; the API then scores 8-bit PIL
        images of the batch.
        """
        raise NotImplementedError(f"model {self.name!r} has no tensor path (it is not differentiable)")

    def num_parameters(self) -> int:
        """Number of parameters (learned or fitted) the model carries."""
        return 0

    @classmethod
    def released_parameters(cls) -> int | None:
        """Parameters of the released architecture this model reproduces, counted without loading weights.

        Lets an efficiency study say whether a measured model is at its real size
        (a tiny stand-in on CPU is not). ``None`` when there is no single release.
        """
        return None

    @property
    def generated_tokens(self) -> int | None:
        """Running count of the tokens a generative model has written, for per-image token costs."""
        return None

    def timing_stages(self) -> dict[str, Callable[[Any], Any]] | None:
        """The forward pass as named stages, each fed the previous one's output, for a time breakdown.

        The first stage takes a stacked batch of prepared inputs. ``None`` when
        the model is not split into stages.
        """
        return None

    def take_counts(self) -> dict[str, int]:
        """Counts of what happened while scoring since the previous call (then reset), for the results.

        A reasoning MLLM counts unparseable answers and accepted ratings outside
        its range; the runner takes them per test set. Empty by default.
        """
        return {}

    def input_resolution(self) -> str:
        """What resolution the model actually sees, for the efficiency table."""
        return "full" if self.traits.preprocessing == "full-resolution" else "model-defined"

    def config(self) -> dict[str, Any]:
        """The settings that determine this model's scores, recorded with every result.

        Derived from the constructor's signature, so it cannot drift from the
        options a user can set; :meth:`runtime_config` adds what is only known
        once the model is built.
        """
        return {**constructor_params(self), **self.runtime_config()}

    def runtime_config(self) -> dict[str, Any]:
        """Facts decided when the model is built (a checkpoint's layout, the effective decoding settings)."""
        return {}

    def synchronize(self) -> None:
        """Wait for queued device work, so timings measure it."""
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.synchronize()
