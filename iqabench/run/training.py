"""The one way anything is trained: cached by fingerprint, resumable, renamed into place when done.

A suite's ``train: true`` entry, ``iqabench train`` and a trainer's own steps
(RACT's per-dataset RL, label alignment and SFT) all go through
:func:`cached_step`:

* the settings that determine the result are fingerprinted; a finished folder
  whose marker holds the same fingerprint is reused, not redone;
* the work runs in ``<folder>.partial``, stamped with the fingerprint: an
  interrupted run resumes there (trainers that can, from their last
  ``checkpoint-N``) only if it was started with the same settings;
* when the work returns, a marker is written and the folder is renamed into
  place, so a folder with a marker is always complete.

Under ``accelerate launch`` the main process does the folder bookkeeping and
every process does the work, or, for work that is not written for several
processes (``every_process=False``), the main process alone does it while the
others wait and then read its marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqabench.content import code_identity, images_digest, option_files_digest
from iqabench.contracts.trainer import TrainingSet
from iqabench.errors import IQABenchError
from iqabench.files import atomic_write_json, read_json
from iqabench.provenance import fingerprint
from iqabench.run.distributed import processes

log = logging.getLogger("iqabench.run.training")

MARKER = "iqabench_training.json"
STAMP = "iqabench_partial.json"


class StaleCheckpointError(IQABenchError):
    """A finished folder made with other settings, which the caller may not replace."""


@dataclass
class StepResult:
    """What a cached step gave: ``trained`` or ``reused``, its output (paths absolute) and its marker."""

    status: str
    output: dict[str, Any]
    record: dict[str, Any]


def relative_paths(output: dict[str, Any], base: Path) -> dict[str, Any]:
    """Paths inside ``base`` written relative to it, so the folder can be renamed, moved or copied.

    A path given relative to the working folder (a run started with a relative ``--out``) counts too.
    """
    prefix = base.resolve()
    relative = {}
    for key, value in output.items():
        # only strings that name an existing file or folder are paths: "cuda" or a prompt never are, even when
        # the working folder is inside ``base``
        if isinstance(value, str) and value and _is_path_inside(value, prefix):
            relative[key] = {"relative_path": str(Path(value).resolve().relative_to(prefix))}
        else:
            relative[key] = value
    return relative


def _is_path_inside(value: str, prefix: Path) -> bool:
    try:
        path = Path(value)
        return path.exists() and path.resolve().is_relative_to(prefix)
    except (OSError, ValueError):  # not a valid path on this system (too long, NUL bytes)
        return False


def absolute_paths(output: dict[str, Any], base: Path) -> dict[str, Any]:
    return {
        key: str((base / value["relative_path"]).resolve()) if isinstance(value, dict) and "relative_path" in value
        else value
        for key, value in output.items()
    }


def cached_step(
    folder: Path,
    settings: dict[str, Any],
    work: Callable[[Path], dict[str, Any]],
    *,
    force: bool = False,
    replace_stale: bool = True,
    record: Callable[[], dict[str, Any]] | None = None,
    what: str = "training",
    every_process: bool = True,
) -> StepResult:
    """Run ``work(partial_folder)`` unless ``folder`` already holds its result for ``settings``.

    ``work`` returns a mapping (e.g. the model options that load a checkpoint);
    paths in it that point into the partial folder are kept relative and come
    back pointing into ``folder``. ``replace_stale=False`` refuses to delete a
    finished folder made with other settings (a user's ``--out``); ``force``
    redoes the work in any case. ``record`` adds facts to the marker.
    ``every_process=False`` runs ``work`` in the main process only.
    """
    folder = Path(folder)
    settings = json.loads(json.dumps(settings, default=str))
    key = fingerprint(settings)
    marker = folder / MARKER
    group = processes()
    partial = folder.with_name(folder.name + ".partial")
    stamp = partial / STAMP

    def reuse_or_prepare() -> dict[str, Any] | None:
        """The finished step's marker to reuse, or ``None`` after making the partial folder ready (main only,
        so that no process looks at the folders while another deletes them)."""
        if marker.exists() and not force:
            info = read_json(marker)
            if info.get("fingerprint") == key:
                return info
            if not replace_stale:
                raise StaleCheckpointError(
                    f"{folder} holds a {what} made with other settings (see {marker}); pass --force to redo it "
                    "there, or choose another output folder."
                )
            log.info("%s: settings changed since %s was made; doing it again", what, folder)
        elif folder.exists() and any(folder.iterdir()) and not marker.exists():
            raise IQABenchError(
                f"{folder} exists and is not an iqabench output (no {MARKER}); choose another output folder."
            )
        if folder.exists():
            shutil.rmtree(folder)
        if partial.exists() and (force or read_json(stamp).get("fingerprint") != key):
            shutil.rmtree(partial)  # started with other settings: nothing in it may be resumed
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stamp, {"fingerprint": key, "settings": settings})
        return None

    reused = group.main_only(reuse_or_prepare)
    if reused is not None:
        log.info("%s: reusing %s (finished earlier with the same settings)", what, folder)
        return StepResult("reused", absolute_paths(reused.get("output", {}), folder), reused)
    info = failure = None
    if every_process or group.is_main:
        try:
            start = time.perf_counter()
            output = work(partial)
            info = {"fingerprint": key, "settings": settings, "output": relative_paths(output, partial),
                    "seconds": time.perf_counter() - start, **(record() if record else {})}
        except Exception as exc:  # every process learns of it, so none waits for a step that will not come
            failure = exc
    errors = group.gather(None if failure is None else f"{type(failure).__name__}: {failure}")
    if failure is not None:
        raise failure
    if any(errors):
        raise IQABenchError(f"{what} failed in another process: {next(e for e in errors if e)}")
    def finish() -> dict[str, Any]:
        atomic_write_json(partial / MARKER, info)
        stamp.unlink(missing_ok=True)
        partial.rename(folder)
        return info

    info = group.main_only(finish)  # the main process's record: the others may not have run the work
    return StepResult("trained", absolute_paths(info["output"], folder), info)


def records_digest(records: Sequence[Any]) -> str:
    """A short hash of which images with which labels a dataset contributes (not where they are stored)."""
    blob = "\n".join(f"{r.image}\t{r.mos!r}" for r in records).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingRequest:
    """Everything that determines a trained checkpoint."""

    model: str
    trainer: str
    model_options: dict[str, Any] = field(default_factory=dict)
    trainer_options: dict[str, Any] = field(default_factory=dict)
    datasets: Sequence[TrainingSet] = ()
    seed: int = 0
    device: str = "cpu"

    def settings(self) -> dict[str, Any]:
        """The fingerprinted settings: datasets by name, size and labels, not by folder, so moving data keeps it
        (:func:`train_model` adds the images, files and code by content)."""
        return {
            "trainer": self.trainer,
            "trainer_options": self.trainer_options,
            "model": self.model,
            "model_options": self.model_options,
            "datasets": [(t.name, len(t.records), records_digest(t.records))
                         + ((f"resize {t.resize.shorter_side} {t.resize.max_side}",) if t.resize is not None else ())
                         for t in self.datasets],
            "seed": self.seed,
        }


def _training_inputs(request: TrainingRequest, trainer: type) -> dict[str, Any]:
    """What a training reads besides its settings, by content: the training images (by size and modification
    time), the files its options name (a base checkpoint, reasoning texts) and the trainer's code."""
    return {
        "images": [images_digest(t.image_paths(), [r.image for r in t.records]) for t in request.datasets],
        "model_option_files": option_files_digest(request.model_options),
        "trainer_option_files": option_files_digest(request.trainer_options),
        "code": code_identity(trainer),
    }


def train_model(
    request: TrainingRequest,
    folder: Path,
    *,
    registry: Any = None,
    force: bool = False,
    replace_stale: bool = True,
) -> StepResult:
    """Train ``request.model`` with its trainer into ``folder``; the result's output is the options that load it."""
    import torch

    from iqabench.registry.factory import create_trainer

    if not request.datasets:
        raise IQABenchError(f"training {request.model!r} needs at least one training dataset.")
    trainer = create_trainer(request.trainer, registry=registry, **request.trainer_options)

    def work(partial: Path) -> dict[str, Any]:
        log.info("%s: training with %s on %s", request.model, request.trainer,
                 ", ".join(t.name for t in request.datasets))
        torch.manual_seed(request.seed)
        return trainer.train(dict(request.model_options), list(request.datasets), partial, seed=request.seed,
                             device=request.device)

    settings = {**request.settings(), "inputs": _training_inputs(request, type(trainer))}
    return cached_step(folder, settings, work, force=force, replace_stale=replace_stale,
                       record=lambda: {"trainer_config": trainer.config()}, what=f"training of {request.model}",
                       every_process=trainer.uses_all_processes)
