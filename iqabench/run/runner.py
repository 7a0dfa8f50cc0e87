"""The loop of a suite run: for each model, train -> score every test set -> measure; then results.

:func:`evaluate` runs a checked :class:`~iqabench.run.plan.RunPlan` (see
:func:`iqabench.run.plan.plan_run`); :func:`run_suite` does both. Everything lands
in the plan's :class:`~iqabench.run.layout.RunLayout`, and a re-run resumes:
finished training, prediction files whose fingerprint and checksum match, and
efficiency measurements are reused, so a resumed run recomputes only the
(seeded) metrics and reports exactly the numbers of the first. A failure in
one (model, test set) pair is recorded with its traceback and the suite goes
on.

The same loop runs in every process of ``accelerate launch -m iqabench run``
(one process is the plain case): each pair is scored by all processes
(:mod:`iqabench.run.pair_scoring`, journalled by batch, so a killed run loses only
the batches in progress). The main process alone holds the output folder,
measures efficiency (:mod:`iqabench.run.efficiency`, while the others wait,
so the device is quiet) and writes the results.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from iqabench.errors import IQABenchError
from iqabench.extras import install_hint
from iqabench.provenance import command_line
from iqabench.reports.results import build_results
from iqabench.run.distributed import Processes, describe_process, processes
from iqabench.run.efficiency import measure_model
from iqabench.run.outcome import ModelOutcome
from iqabench.run.pair_scoring import score_pair
from iqabench.run.plan import RunPlan, plan_run
from iqabench.run.training import TrainingRequest, train_model

log = logging.getLogger("iqabench.run.runner")


def run_suite(suite_file: str | Path, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Check and run a suite; ``options`` are those of :func:`iqabench.run.plan.plan_run`. Returns the results."""
    return evaluate(plan_run(suite_file, out, **options))


@contextmanager
def _run_folder(plan: RunPlan, group: Processes):
    """The output folder held for this run (by the main process, once per launch), with each process's log in it."""
    layout = plan.layout
    with ExitStack() as held:
        refusal = None
        if group.is_main:
            try:
                layout.check_ours(plan.suite.name)
                held.enter_context(layout.lock(command_line()))
                shutil.copyfile(plan.suite_file, layout.suite_copy)
            except Exception as exc:  # told to the others, so they stop instead of waiting for the main process
                refusal = exc
        message = group.broadcast(None if refusal is None else str(refusal))
        if refusal is not None:
            raise refusal
        if message is not None:
            raise IQABenchError(f"the main process could not take the output folder: {message}")
        log_file = layout.process_log(group.index)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        prefix = f"[process {group.index}/{group.count}] " if group.count > 1 else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s"))
        logging.getLogger("iqabench").addHandler(handler)
        try:
            yield
        finally:
            logging.getLogger("iqabench").removeHandler(handler)
            handler.close()


def evaluate(plan: RunPlan) -> dict[str, Any]:
    """Train where asked, score every (model, test set) pair, measure each model, write results and leaderboard.

    Under a multi-process launch every process calls this with the same plan and gets the same results.
    """
    started = time.perf_counter()
    group = processes()
    with _run_folder(plan, group):
        launch = group.gather(describe_process(plan.device))
        outcomes = []
        for planned in plan.models:
            outcome = ModelOutcome(planned, dict(planned.options))
            outcomes.append(outcome)
            if planned.entry.train and not _train(plan, outcome, group):
                continue
            held = [plan.test_for(planned, test) for test in plan.tests if plan.holds(planned, test)]
            for test in held:
                score_pair(plan, outcome, test, group)
            if held:
                group.main_only(lambda: measure_model(plan, outcome, held[0], group.count))  # noqa: B023 (called at once)
            outcome.release()
        return group.main_only(
            lambda: build_results(plan, outcomes, elapsed=time.perf_counter() - started, launch=launch))


def train_only(plan: RunPlan) -> dict[str, dict[str, Any]]:
    """Train every ``train: true`` model into the run's checkpoints exactly as :func:`evaluate` would.

    A later ``iqabench run`` of the same suite and output folder reuses them. Returns each label's model options.
    """
    trained = {}
    group = processes()
    with _run_folder(plan, group):
        for planned in plan.models:
            if planned.entry.train:
                outcome = ModelOutcome(planned, dict(planned.options))
                if not _train(plan, outcome, group):
                    hint = install_hint(outcome.training["error"])
                    raise IQABenchError(f"training {planned.label} failed: {outcome.training['error']} "
                                        f"(traceback in {plan.layout.failure(planned.slug, 'training')})"
                                        + (f"; {hint}" if hint else ""))
                trained[planned.label] = outcome.options
    return trained


# -- training ----------------------------------------------------------------------------------------------------


def _train(plan: RunPlan, outcome: ModelOutcome, group: Processes) -> bool:
    """Train (or reuse the checkpoint of) one model in every process; False, with the failure recorded, if any
    failed."""
    planned = outcome.planned
    request = TrainingRequest(
        model=planned.entry.name, trainer=planned.trainer, model_options=planned.options,
        trainer_options=planned.trainer_options, datasets=plan.training_for(planned), seed=plan.suite.seed,
        device=plan.device,
    )
    result = failure = None
    try:
        result = train_model(request, plan.layout.checkpoint(planned.slug), registry=plan.registry, force=plan.force)
    except Exception as exc:  # recorded; the suite goes on with the other models
        failure = exc
    errors = group.gather(None if failure is None else f"{type(failure).__name__}: {failure}")
    failed = [(index, error) for index, error in enumerate(errors) if error]
    if failed:
        index, error = failed[0]
        where = "" if group.count == 1 else f" (process {index} of {group.count})"
        if group.is_main:
            path = plan.layout.failure(planned.slug, "training")
            if failure is not None:
                path = plan.layout.record_failure(planned.slug, "training", failure)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"training failed in process {index} of {group.count}; see its log\n{error}\n")
            log.error("%s: training failed%s: %s (traceback in %s)", planned.label, where, error, path)
        outcome.training = {"status": "failed", "error": error + where}
        return False
    outcome.options.update(result.output)
    outcome.training = {"status": result.status, **result.record, "model_options": result.output}
    return True
