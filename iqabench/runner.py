"""The loop of a suite run: for each model, train -> score every test set -> measure; then results.

:func:`evaluate` runs a checked :class:`~iqabench.plan.RunPlan` (see
:func:`iqabench.plan.plan_run`); :func:`run_suite` does both. Everything lands
in the plan's :class:`~iqabench.layout.RunLayout`, and a re-run resumes:
finished training, prediction files whose fingerprint and checksum match, and
efficiency measurements are reused, so a resumed run recomputes only the
(seeded) metrics and reports exactly the numbers of the first. A failure in
one (model, test set) pair is recorded with its traceback and the suite goes
on.

The same loop runs in every process of ``accelerate launch -m iqabench run``
(one process is the plain case). For each pair the main process works out
which batches are still to be scored; each process scores its share of them
(whole batches of the single-process run, :mod:`iqabench.distributed`) on its
own device and appends each finished batch to its journal
(:class:`~iqabench.predictions.ShardJournal`); the main process then merges
the journals in test-set order into the pair's prediction file. A killed run
loses only the batches in progress. The main process alone holds the output
folder, measures efficiency (while the others wait, so the device is quiet)
and writes the results.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqabench import efficiency, progress
from iqabench.distributed import Processes, batches, describe_process, processes, share
from iqabench.errors import IQABenchError
from iqabench.factory import create_model
from iqabench.files import atomic_write_json, read_json
from iqabench.layout import shard_name
from iqabench.model import Model
from iqabench.plan import PlannedModel, RunPlan, TestSet, plan_run
from iqabench.predictions import Prediction, journal_header
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
def _run_folder(plan: RunPlan, group: Processes):
    """The output folder held for this run (by the main process, once per launch), with each process's log in it."""
    layout = plan.layout
    with ExitStack() as held:
        refusal = None
        if group.is_main:
            try:
                held.enter_context(layout.lock(command_line()))
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
        if group.is_main:
            shutil.copyfile(plan.suite_file, plan.layout.suite_copy)
        outcomes = []
        for planned in plan.models:
            outcome = ModelOutcome(planned, dict(planned.options))
            outcomes.append(outcome)
            if planned.entry.train and not _train(plan, outcome, group):
                continue
            held = [test for test in plan.tests if plan.holds(planned, test)]
            for test in held:
                _score_pair(plan, outcome, test, group)
            if group.is_main and held:
                _measure(plan, outcome, held[0], group.count)
            _release(outcome)
        results = None
        if group.is_main:
            results = build_results(plan, outcomes, elapsed=time.perf_counter() - started, launch=launch)
        return group.broadcast(results)


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
                    raise IQABenchError(f"training {planned.label} failed: {outcome.training['error']} "
                                        f"(traceback in {plan.layout.failure(planned.slug, 'training')})")
                trained[planned.label] = outcome.options
    return trained


# -- training ----------------------------------------------------------------------------------------------------


def _train(plan: RunPlan, outcome: ModelOutcome, group: Processes) -> bool:
    """Train (or reuse the checkpoint of) one model in every process; False, with the failure recorded, if any failed."""
    planned = outcome.planned
    request = TrainingRequest(
        model=planned.entry.name, trainer=planned.trainer, model_options=planned.options,
        trainer_options=planned.trainer_options, datasets=plan.training, seed=plan.suite.seed, device=plan.device,
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


def _score_pair(plan: RunPlan, outcome: ModelOutcome, test: TestSet, group: Processes) -> None:
    """Score one pair: the main process says which batches are left, all score their share, the main one merges."""
    key = _pair_fingerprint(plan, outcome, test)
    header = journal_header(key, outcome.planned.batch_size, [r.image for r in test.records])
    todo = _batches_to_score(plan, outcome, test, key, header) if group.is_main else None
    todo = group.broadcast(todo)
    if todo is None:
        return
    report = _score_batches(plan, outcome, test, header, share(todo, group.index, group.count), group)
    reports = group.gather(report)
    if group.is_main:
        _merge_pair(plan, outcome, test, key, header, reports)


def _batches_to_score(plan: RunPlan, outcome: ModelOutcome, test: TestSet, key: str,
                      header: dict[str, Any]) -> list[int] | None:
    """The batches of a pair still to be scored (main process), or ``None`` when its predictions are complete."""
    planned, layout = outcome.planned, plan.layout
    store = layout.predictions(planned.slug, test.slug)
    if not plan.force:
        problem = store.problem(key, [r.image for r in test.records])
        if problem is None:
            log.info("%s on %s: finished earlier, skipped (use --force to redo)", planned.label, test.label)
            return None
        if store.meta() is not None and store.meta().get("fingerprint") == key:
            log.warning("%s on %s: scoring again: %s", planned.label, test.label, problem)
    if plan.force:
        for journal in layout.journals(planned.slug, test.slug):
            journal.path.unlink()
    scored = _scored_batches(plan, outcome, test, header)
    total = len(batches(len(test.records), planned.batch_size))
    if scored:
        log.info("%s on %s: resuming; %d of %d batches were scored before", planned.label, test.label, len(scored),
                 total)
    return [batch for batch in range(total) if batch not in scored]


def _scored_batches(plan: RunPlan, outcome: ModelOutcome, test: TestSet,
                    header: dict[str, Any]) -> dict[int, list[Prediction]]:
    """The intact batches in a pair's journals, from any earlier launch with the same settings.

    Journals written with other settings are removed (main process, while no process writes to them).
    """
    planned = outcome.planned
    spans = batches(len(test.records), planned.batch_size)
    found: dict[int, list[Prediction]] = {}
    for journal in plan.layout.journals(planned.slug, test.slug):
        entries = journal.read(header)
        if not entries:
            journal.path.unlink(missing_ok=True)
            continue
        for batch, rows in entries.items():
            expected = [test.records[i].image for i in spans[batch]] if 0 <= batch < len(spans) else None
            if batch not in found and [row.image for row in rows] == expected:
                found[batch] = rows
    return found


def _score_batches(plan: RunPlan, outcome: ModelOutcome, test: TestSet, header: dict[str, Any], mine: list[int],
                   group: Processes) -> dict[str, Any]:
    """Score this process's batches of a pair, appending each to its journal; what it did, for the main process."""
    planned, layout = outcome.planned, plan.layout
    report: dict[str, Any] = {"index": group.index, "images": 0, "seconds": None, "peak_memory_mib": None,
                              "memory_method": None, "model_config": outcome.config,
                              "preprocessing": outcome.preprocessing, "model_counts": {}, "error": None}
    if not mine:
        return report
    spans = batches(len(test.records), planned.batch_size)
    positions = [i for batch in mine for i in spans[batch]]
    all_paths = test.paths()
    journal = layout.journal(planned.slug, test.slug, group.index, group.count)
    journal.open(header)
    bar = progress.bar(total=len(positions), desc=f"{planned.label} | {test.label}", unit="img",
                       enabled=plan.progress)
    try:
        model = _model(plan, outcome)
        report.update(model_config=outcome.config, preprocessing=outcome.preprocessing)
        model.take_counts()  # what an earlier test set left behind is not this one's
        start = time.perf_counter()
        with efficiency.PeakMemory(plan.device) as memory:
            for scored in score_files(model, [all_paths[i] for i in positions], batch_size=planned.batch_size,
                                      num_workers=plan.suite.num_workers, resize=test.resize, reading=test.reading,
                                      before_batch=lambda start: _seed_batch(plan, positions[start])):
                batch = positions[scored[0][0]] // planned.batch_size
                if [positions[index] for index, _ in scored] != list(spans[batch]):
                    raise IQABenchError(f"internal error: a scored batch of {test.label} is not batch {batch}")
                journal.append(batch, [_prediction(test.records[positions[index]], score) for index, score in scored])
                bar.update(len(scored))
        report.update(images=len(positions), seconds=time.perf_counter() - start, memory_method=memory.method,
                      peak_memory_mib=None if memory.peak_bytes is None else memory.peak_bytes / 2**20,
                      model_counts=model.take_counts())
    except Exception as exc:  # the finished batches stay in the journal; the main process reports the pair
        what = test.slug if group.count == 1 else f"{test.slug}.{shard_name(group.index, group.count)}"
        path = layout.record_failure(planned.slug, what, exc)
        log.error("%s on %s failed: %s: %s (traceback in %s)", planned.label, test.label, type(exc).__name__, exc,
                  path)
        report.update(error=f"{type(exc).__name__}: {exc}", traceback=str(path))
    finally:
        journal.close()
        bar.close()
    return report


def _seed_batch(plan: RunPlan, first_image: int) -> None:
    """Seed torch before each batch from the batch's place in the test set, so a model that samples gives the
    same predictions whether a run was resumed or shared out over several processes."""
    if "torch" in sys.modules:  # a model that never imported torch draws nothing from its generator
        import torch

        torch.manual_seed(plan.suite.seed * 1_000_003 + first_image)


def _prediction(record, score) -> Prediction:
    return Prediction(record.image, score.value, record.mos, record.mos_raw, score.error)


def _merge_pair(plan: RunPlan, outcome: ModelOutcome, test: TestSet, key: str, header: dict[str, Any],
                reports: list[dict[str, Any]]) -> None:
    """Join the journals of a pair in test-set order into its prediction file (main process), or record why not."""
    planned, layout = outcome.planned, plan.layout
    store = layout.predictions(planned.slug, test.slug)
    found = _scored_batches(plan, outcome, test, header)
    total = len(batches(len(test.records), planned.batch_size))
    missing = [batch for batch in range(total) if batch not in found]
    if outcome.config is None:  # the model was built in other processes only
        outcome.config = next((r["model_config"] for r in reports if r["model_config"] is not None), None)
        outcome.preprocessing = next((r["preprocessing"] for r in reports if r["preprocessing"] is not None), None)
    if missing:
        store.clear()  # predictions made with other settings must not stand in for these
        failed = [r for r in reports if r["error"]]
        if len(reports) > 1 or not failed:  # one process's own traceback is already the pair's
            lines = [f"{len(missing)} of {total} batches were not scored; a resumed run scores them."]
            for report in failed:
                lines += [f"process {report['index']} of {len(reports)} failed:",
                          Path(report["traceback"]).read_text().rstrip()]
                Path(report["traceback"]).unlink(missing_ok=True)
            if not failed:
                lines.append(f"{IQABenchError.__name__}: no process reported why")
                log.error("%s on %s: %d batches missing after scoring", planned.label, test.label, len(missing))
            path = layout.failure(planned.slug, test.slug)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
        return
    rows = [row for batch in range(total) for row in found[batch]]
    done = [r for r in reports if r["seconds"] is not None]
    seconds = max((r["seconds"] for r in done), default=None)
    images = sum(r["images"] for r in done)
    peaks = [r["peak_memory_mib"] for r in done if r["peak_memory_mib"] is not None]
    meta = {
        "fingerprint": key,
        "model": planned.entry.name,
        "label": planned.label,
        "model_config": outcome.config,
        "test_set": test.slug,
        "dataset": test.ref.dataset,
        "split": test.split,
        "unscored": sum(r.prediction is None for r in rows),
        # timing and memory of this run's scoring; a resumed run scored only the images it had left
        "seconds": seconds,
        "images_scored": images,
        "end_to_end_images_per_second": images / seconds if images and seconds else None,
        "scoring_peak_memory_mib": max(peaks) if peaks else None,
        "memory_method": next((r["memory_method"] for r in done), None),
        "batch_size": planned.batch_size,
        "num_workers": plan.suite.num_workers,
        "processes": len(reports),
        # counts the model kept (Model.take_counts) over the images scored in this run
        "model_counts": dict(sum((Counter(r["model_counts"]) for r in done), Counter())),
    }
    if len(reports) > 1:
        meta["per_process"] = [{k: r[k] for k in ("index", "images", "seconds", "peak_memory_mib")} for r in reports]
    store.write(rows, meta)
    for journal in layout.journals(planned.slug, test.slug):
        journal.path.unlink(missing_ok=True)
    layout.failure(planned.slug, test.slug).unlink(missing_ok=True)


# -- efficiency --------------------------------------------------------------------------------------------------


def _measure(plan: RunPlan, outcome: ModelOutcome, test: TestSet, launched: int) -> None:
    """Time the model on prepared images of ``test`` (main process), unless measured earlier with these settings.

    Under a launch of several processes the others have finished scoring and wait for this one, so the
    measurement runs alone on its device; the record says so.
    """
    spec = plan.suite.efficiency
    if not spec.enabled or not test.records:
        return
    planned = outcome.planned
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
        with _all_cores(plan.device, launched):
            result = efficiency.measure(model, items, batch_size=planned.batch_size, warmup=spec.warmup,
                                        repeats=spec.repeats)
    except Exception as exc:
        failure = plan.layout.record_failure(planned.slug, "efficiency", exc)
        log.error("%s: efficiency measurement failed: %s (traceback in %s)", planned.label, exc, failure)
        return
    measured_by = "one process" if launched == 1 else f"one process of {launched}, while the others waited"
    record = result.to_dict()
    if not str(plan.device).startswith("cuda"):
        # The peak resident set of a process that has already scored (and freed) everything is no model's
        # working set: freed memory stays in the process, so its rise reads +0. Only a fresh process per model
        # measures it, as `iqabench bench` does.
        record.update(peak_memory_mib=None, baseline_memory_mib=None,
                      memory_method=CPU_MEMORY_NOT_MEASURED)
    atomic_write_json(path, {"fingerprint": key, "measured_on": test.label, "measured_by": measured_by, **record})


#: why a suite run records no CPU peak memory
CPU_MEMORY_NOT_MEASURED = ("not measured on CPU in a run (freed memory stays in the process); "
                           "`iqabench bench` measures each model in a fresh process")


@contextmanager
def _all_cores(device: str, launched: int):
    """On a CPU, the measuring process uses every core while the others wait, as a single process would.

    Launchers give each of several processes one thread (``OMP_NUM_THREADS=1``); timing with one thread would
    make a CPU model look slower than the same model measured in a single-process run.
    """
    if not (device == "cpu" and launched > 1 and hasattr(os, "sched_getaffinity") and "torch" in sys.modules):
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _prepared_inputs(model: Model, test: TestSet, count: int):
    """Prepared inputs (decoded, resized, the model's preprocessing) of the first ``count`` images of ``test``."""
    from iqabench.loader import iterate_batches

    draft_size = model.decode_size() if test.reading.jpeg_draft else None
    for batch in iterate_batches(test.paths()[:count], model.preprocessor(), batch_size=8, num_workers=0,
                                 resize=test.resize, reading=test.reading, draft_size=draft_size):
        yield [item.item for item in batch if item.error is None]


# -- bookkeeping -------------------------------------------------------------------------------------------------


def _release(outcome: ModelOutcome) -> None:
    if outcome.model is None:
        return
    outcome.model = None
    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
