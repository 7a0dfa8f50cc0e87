"""The ``describer``: a generative model that knows the synthetic dataset's distortions.

In the offline quickstart no reasoning MLLM can be downloaded, yet RALI needs
quality texts to learn from. The describer fills that role through exactly the
path a real reasoner takes (``iqabench describe``, the texts file, RALI's
trainer): it recognises an image of the synthetic dataset by the SHA-256 of
its decoded pixels, computed in the decode workers, and writes a sentence
about its distortion and severity, with the designed label as its score.
Phrasings are drawn with ``torch.randint``, so the per-batch seeding of
:func:`iqabench.reasoning.describe.describe` makes each (image, seed) text reproducible
while different seeds give different wordings.

It cannot describe any other image: those get a failure, never a guess.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iqabench.api import Model, ModelTraits, Score

if TYPE_CHECKING:
    from PIL import Image

# The generator, distortions (SciPy) and torch are imported when a describer is built or describes,
# so listing models stays fast.


def _torch_choice(options: Sequence[str]) -> str:
    import torch

    return options[int(torch.randint(len(options), (1,)).item())]


class Describer(Model):
    """Writes distortion-and-severity text for images of the synthetic dataset (offline stand-in reasoner)."""

    name = "describer"
    score_range = (1.0, 5.0)
    traits = ModelTraits(preprocessing="full-resolution", generative=True)

    def __init__(self, *, root: str | os.PathLike | None = None, device: str = "cpu", dtype: str = "float32") -> None:
        """``root``: the synthetic dataset's root (default: where the ``synthetic`` dataset puts it).

        The describer knows every image of every generation (any size) under ``root``; if there is none yet,
        the full default dataset is generated first.
        """
        from iqabench_plugins.synthetic.distortions import DISTORTIONS
        from iqabench_plugins.synthetic.generate import DEFAULT_SIZE, default_root, ensure_generated, generations
        from iqabench_plugins.synthetic.references import REFERENCES

        super().__init__(device=device, dtype=dtype)
        self.root = Path(os.path.expanduser(root)) if root is not None else default_root()
        manifests = [manifest for _, manifest in generations(self.root)]
        if not manifests:
            manifests = [ensure_generated(self.root, DEFAULT_SIZE, list(REFERENCES), list(DISTORTIONS))[1]]
        self._by_hash: dict[str, dict[str, Any]] = {
            entry["sha256"]: entry for manifest in manifests for entry in manifest["images"]
        }

    def preprocessor(self) -> Callable[[Image.Image], str]:
        from iqabench_plugins.synthetic.generate import image_hash

        return image_hash

    def score_batch(self, items: Sequence[str]) -> list[Score]:
        from iqabench_plugins.synthetic.phrasing import describe_distortion

        scores = []
        for digest in items:
            entry = self._by_hash.get(digest)
            if entry is None:
                scores.append(
                    Score.failure(
                        f"not an image of the synthetic dataset: its pixels match none of the {len(self._by_hash)} "
                        f"images generated in {self.root}; the describer only describes images it generated "
                        "(unresized), use a reasoning model for others."
                    )
                )
                continue
            text = describe_distortion(entry["distortion"], int(entry["level"]), _torch_choice)
            scores.append(Score.ok(entry["label"], text=text))
        return scores

    def runtime_config(self) -> dict[str, Any]:
        return {"known_images": len(self._by_hash)}
