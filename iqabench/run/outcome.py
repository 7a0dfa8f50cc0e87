"""What became of one planned model in a suite run: its final options, training record and the built model.

The model is built once, on first use by any step of the run (scoring, the
efficiency measurement), and released before the next model is built, so a
run holds one model in memory at a time.
"""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iqabench.contracts.model import Model
from iqabench.registry.factory import build_model

if TYPE_CHECKING:
    from iqabench.run.plan import PlannedModel, RunPlan

log = logging.getLogger("iqabench.run.runner")


@dataclass
class ModelOutcome:
    """One planned model's options (a trained checkpoint's folder once trained), training record and config."""

    planned: PlannedModel
    options: dict[str, Any]
    training: dict[str, Any] | None = None
    #: the built model's recorded settings (``Model.config()``), once it was built
    config: dict[str, Any] | None = None
    preprocessing: str | None = None
    model: Model | None = field(default=None, repr=False)

    def built(self, plan: RunPlan) -> Model:
        """The model, built on first use with the run's device and the planned dtype and options."""
        if self.model is None:
            log.info("%s: loading model %s", self.planned.label, self.planned.entry.name)
            self.model = build_model(self.planned.entry.name, device=plan.device, dtype=self.planned.dtype,
                                     registry=plan.registry, **self.options)
            self.config = self.model.config()
            self.preprocessing = self.model.traits.preprocessing
        return self.model

    def release(self) -> None:
        """Drop the model and return its memory (and the device's cache) before the next model is built."""
        if self.model is None:
            return
        self.model = None
        gc.collect()
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
