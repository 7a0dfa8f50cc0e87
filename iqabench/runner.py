"""The loop of a suite run: for each model, train -> score every test set -> measure; then results.

:func:`evaluate` runs a checked :class:`~iqabench.plan.RunPlan` (see
:func:`iqabench.plan.plan_run`); :func:`run_suite` does both. Everything lands
in the plan's :class:`~iqabench.layout.RunLayout`, and a re-run resumes:
finished training, prediction files whose fingerprint and checksum match, and
efficiency measurements are reused, so a resumed run recomputes only the
(seeded) metrics and reports exactly the numbers of the first. A failure in
one (model, test set) pair is recorded with its traceback and the suite goes
on.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqabench import efficiency, progress
from iqabench.errors import IQABenchError
from iqabench.factory import create_model
from iqabench.model import Model
from iqabench.plan import PlannedModel, RunPlan, TestSet, plan_run
from iqabench.files import atomic_write_json, read_json
from iqabench.predictions import Prediction
from iqabench.provenance import command_line, fingerprint
from iqabench.results import build_results
from iqabench.scoring import score_files
from iqabench.training import TrainingRequest, relative_paths, train_model

log = logging.getLogger("iqabench.runner")


@dataclass
class ModelOutcome:
    """What became of one planned model: its final options (a trained checkpoint), training and config."""

    planned: PlannedModel
    options: dict[str, Any]
    training: dict[str, Any] | None = None
    #: the built model's recorded settings (``Model.config()``), once it was built
    config: dict[str, Any] | None = None
    preprocessing: str | None = None
    model: Model | None = field(default=None, repr=False)


def run_suite(suite_file: str | Path, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Check and run a suite; ``options`` are those of :func:`iqabench.plan.plan_run`. Returns the results."""
    return evaluate(plan_run(suite_file, out, **options))


@contextmanager
def _run_folder(plan: RunPlan):
    """The output folder held for this run, with the run's log written into it."""
    layout = plan.layout
    with layout.lock(command_line()):
        handler = logging.FileHandler(layout.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("iqabench").addHandler(handler)
        try:
            yield
        finally:
            logging.getLogger("iqabench").removeHandler(handler)
            handler.close()


def evaluate(plan: RunPlan) -> dict[str, Any]:
    """Train where asked, score every (model, test set) pair, measure each model, write results and leaderboard."""
    started = time.perf_counter()
    with _run_folder(plan):
        shutil.copyfile(plan.suite_file, plan.layout.suite_copy)
        outcomes = []
        for planned in plan.models:
            outcome = ModelOutcome(planned, dict(planned.options))
            outcomes.append(outcome)
            if planned.entry.train and not _train(plan, outcome):
                continue
            for test in plan.tests:
                _score_pair(plan, outcome, test)
            _measure(plan, outcome)
            _release(outcome)
        return build_results(plan, outcomes, elapsed=time.perf_counter() - started)


def train_only(plan: RunPlan) -> dict[str, dict[str, Any]]:
    """Train every ``train: true`` model into the run's checkpoints exactly as :func:`evaluate` would.

    A later ``iqabench run`` of the same suite and output folder reuses them. Returns each label's model options.
    """
    trained = {}
    with _run_folder(plan):
        for planned in plan.models:
            if planned.entry.train:
                outcome = ModelOutcome(planned, dict(planned.options))
                if not _train(plan, outcome):
                    raise IQABenchError(f"training {planned.label} failed: {outcome.training['error']} "
                                        f"(traceback in {plan.layout.failure(planned.slug, 'training')})")
                trained[planned.label] = outcome.options
    return trained


# -- training ----------------------------------------------------------------------------------------------------


def _train(plan: RunPlan, outcome: ModelOutcome) -> bool:
    """Train (or reuse the checkpoint of) one model; False, with the failure recorded, when training failed."""
    planned = outcome.planned
    request = TrainingRequest(
        model=planned.entry.name, trainer=planned.trainer, model_options=planned.options,
        trainer_options=planned.trainer_options, datasets=plan.training, seed=plan.suite.seed, device=plan.device,
    )
    try:
        result = train_model(request, plan.layout.checkpoint(planned.slug), registry=plan.registry, force=plan.force)
    except Exception as exc:  # recorded; the suite goes on with the other models
        path = plan.layout.record_failure(planned.slug, "training", exc)
        log.error("%s: training failed: %s: %s (traceback in %s)", planned.label, type(exc).__name__, exc, path)
        outcome.training = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        return False
    outcome.options.update(result.output)
    outcome.training = {"status": result.status, **result.record, "model_options": result.output}
    return True


# -- scoring -----------------------------------------------------------------------------------------------------


def _model(plan: RunPlan, outcome: ModelOutcome) -> Model:
    if outcome.model is None:
        planned = outcome.planned
        log.info("%s: loading model %s", planned.label, planned.entry.name)
        outcome.model = create_model(planned.entry.name, device=plan.device, dtype=planned.dtype,
                                     registry=plan.registry, **outcome.options)
        outcome.config = outcome.model.config()
        outcome.preprocessing = outcome.model.preprocessing
    return outcome.model


def _pair_fingerprint(plan: RunPlan, outcome: ModelOutcome, test: TestSet) -> str:
    return fingerprint(
        {
            "model": outcome.planned.entry.name,
            "options": relative_paths(outcome.options, plan.layout.root),
            "training": (outcome.training or {}).get("fingerprint"),
            "dataset": test.ref.model_dump(exclude={"root"}),
            "records": [(r.image, r.mos) for r in test.records],
            "preprocessing": {**test.resize.__dict__, **test.reading.__dict__},
            "dtype": outcome.planned.dtype,
        }
    )


def _score_pair(plan: RunPlan, outcome: ModelOutcome, test: TestSet) -> None:
    planned = outcome.planned
    store = plan.layout.predictions(planned.slug, test.slug)
    key = _pair_fingerprint(plan, outcome, test)
    if not plan.force:
        problem = store.problem(key, [r.image for r in test.records])
        if problem is None:
            log.info("%s on %s: finished earlier, skipped (use --force to redo)", planned.label, test.label)
            return
        if store.meta() is not None and store.meta().get("fingerprint") == key:
            log.warning("%s on %s: scoring again: %s", planned.label, test.label, problem)
    try:
        model = _model(plan, outcome)
        rows, stats = _score(plan, model, planned, test)
    except Exception as exc:
        store.clear()  # predictions made with other settings must not stand in for these
        path = plan.layout.record_failure(planned.slug, test.slug, exc)
        log.error("%s on %s failed: %s: %s (traceback in %s)", planned.label, test.label, type(exc).__name__, exc,
                  path)
        return
    meta = {
        "fingerprint": key,
        "model": planned.entry.name,
        "label": planned.label,
        "model_config": outcome.config,
        "test_set": test.slug,
        "dataset": test.ref.dataset,
        "split": test.split,
        "unscored": sum(r.prediction is None for r in rows),
        **stats,
    }
    store.write(rows, meta)
    plan.layout.failure(planned.slug, test.slug).unlink(missing_ok=True)


def _score(plan: RunPlan, model: Model, planned: PlannedModel, test: TestSet) -> tuple[list[Prediction], dict]:
    paths = test.paths()
    scores = [None] * len(paths)
    model.take_counts()  # what an earlier test set left behind is not this one's
    bar = progress.bar(total=len(paths), desc=f"{planned.label} | {test.label}", unit="img", enabled=plan.progress)
    start = time.perf_counter()
    with efficiency.PeakMemory(plan.device) as memory:
        for batch in score_files(model, paths, batch_size=planned.batch_size, num_workers=plan.suite.num_workers,
                                 resize=test.resize, reading=test.reading):
            for index, score in batch:
                scores[index] = score
            bar.update(len(batch))
    elapsed = time.perf_counter() - start
    bar.close()
    rows = [
        Prediction(record.image, score.value, record.mos, record.mos_raw, score.error)
        for record, score in zip(test.records, scores)
    ]
    stats = {
        "seconds": elapsed,
        "end_to_end_images_per_second": len(paths) / elapsed if elapsed > 0 else None,
        "scoring_peak_memory_mib": None if memory.peak_bytes is None else memory.peak_bytes / 2**20,
        "memory_method": memory.method,
        "batch_size": planned.batch_size,
        "num_workers": plan.suite.num_workers,
        "model_counts": model.take_counts(),
    }
    return rows, stats


# -- efficiency --------------------------------------------------------------------------------------------------


def _measure(plan: RunPlan, outcome: ModelOutcome) -> None:
    """Time the model on prepared images of the first test set, unless measured earlier with these settings."""
    spec = plan.suite.efficiency
    if not spec.enabled or not plan.tests or not plan.tests[0].records:
        return
    planned, test = outcome.planned, plan.tests[0]
    path = plan.layout.efficiency(planned.slug)
    key = fingerprint({"pair": _pair_fingerprint(plan, outcome, test), "batch": planned.batch_size,
                       "device": plan.device, **spec.model_dump()})
    if not plan.force and read_json(path).get("fingerprint") == key:
        return
    try:
        model = _model(plan, outcome)
        items = []
        for batch in _prepared_inputs(model, test, planned.batch_size * 2):
            items.extend(batch)
        if not items:
            raise IQABenchError(f"no readable image in {test.label} to measure efficiency on")
        result = efficiency.measure(model, items, batch_size=planned.batch_size, warmup=spec.warmup,
                                    repeats=spec.repeats)
    except Exception as exc:
        failure = plan.layout.record_failure(planned.slug, "efficiency", exc)
        log.error("%s: efficiency measurement failed: %s (traceback in %s)", planned.label, exc, failure)
        return
    atomic_write_json(path, {"fingerprint": key, "measured_on": test.label, **result.to_dict()})


def _prepared_inputs(model: Model, test: TestSet, count: int):
    """Prepared inputs (decoded, resized, the model's preprocessing) of the first ``count`` images of ``test``."""
    from iqabench.loader import iterate_batches

    for batch in iterate_batches(test.paths()[:count], model.preprocessor(), batch_size=8, num_workers=0,
                                 resize=test.resize, reading=test.reading):
        yield [item.item for item in batch if item.error is None]


# -- bookkeeping -------------------------------------------------------------------------------------------------


def _release(outcome: ModelOutcome) -> None:
    if outcome.model is None:
        return
    outcome.model = None
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
