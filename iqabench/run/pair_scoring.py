"""Scoring one (model, test set) pair of a suite run, journalled by batch so that a killed run resumes.

For each pair the main process works out which batches are still to be scored
(:func:`batches_to_score`: complete prediction files are reused, intact
batches of earlier launches with the same fingerprint are kept); each process
scores its share of the rest (whole batches of the single-process run,
:mod:`iqabench.run.distributed`) on its own device and appends every finished
batch to its journal (:class:`~iqabench.run.predictions.ShardJournal`); the main
process then merges the journals in test-set order into the pair's
checksummed prediction file, or records why it could not.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from iqabench import progress
from iqabench.content import code_identity, option_files_digest
from iqabench.efficiency import measure as efficiency
from iqabench.errors import IQABenchError
from iqabench.provenance import fingerprint
from iqabench.run.distributed import Processes, batches, share
from iqabench.run.layout import shard_name
from iqabench.run.outcome import ModelOutcome
from iqabench.run.plan import RunPlan, TestSet
from iqabench.run.predictions import Prediction, journal_header
from iqabench.run.training import absolute_paths, relative_paths
from iqabench.scoring.engine import batch_seed, score_files

log = logging.getLogger("iqabench.run.runner")


#: what each part of a pair's fingerprint covers, to say which changed
CHANGED = {
    "settings": "the model, its options, training, dtype or preprocessing",
    "labels": "the test set's images or labels",
    "images": "the image files",
    "files": "a file or folder an option names (checkpoint, weights)",
    "code": "the model's code",
    "sampling": "the seed or batch size (the model samples)",
}


def pair_inputs(plan: RunPlan, outcome: ModelOutcome, test: TestSet) -> dict[str, str]:
    """Fingerprints of everything a pair's predictions are computed from, by part (see :data:`CHANGED`)."""
    planned = outcome.planned
    cls = planned.registered.cls
    parts = {
        "settings": fingerprint({
            "model": planned.entry.name,
            "options": relative_paths(outcome.options, plan.layout.root),
            "training": (outcome.training or {}).get("fingerprint"),
            "dataset": test.ref.model_dump(exclude={"root"}),
            "preprocessing": {**test.resize.__dict__, **test.reading.__dict__},
            "dtype": planned.dtype,
        }),
        "labels": test.labels_digest,
        "images": test.images_digest,
        "files": fingerprint(option_files_digest(outcome.options)),
        "code": fingerprint(code_identity(cls)),
    }
    if cls.traits.samples or cls.traits.generative:
        parts["sampling"] = fingerprint({"seed": plan.suite.seed, "batch_size": planned.batch_size})
    return parts


def pair_fingerprint(plan: RunPlan, outcome: ModelOutcome, test: TestSet) -> str:
    return fingerprint(pair_inputs(plan, outcome, test))


def score_pair(plan: RunPlan, outcome: ModelOutcome, test: TestSet, group: Processes) -> None:
    """Score one pair: the main process says which batches are left, all score their share, the main one merges."""
    inputs = pair_inputs(plan, outcome, test)
    key = fingerprint(inputs)
    header = journal_header(key, outcome.planned.batch_size, [r.image for r in test.records])
    todo = group.main_only(lambda: _batches_to_score(plan, outcome, test, key, header, inputs))
    if todo is None:
        return
    report = _score_batches(plan, outcome, test, header, share(todo, group.index, group.count), group)
    reports = group.gather(report)
    group.main_only(lambda: _merge_pair(plan, outcome, test, inputs, header, reports))


def _batches_to_score(plan: RunPlan, outcome: ModelOutcome, test: TestSet, key: str,
                      header: dict[str, Any], inputs: dict[str, str]) -> list[int] | None:
    """The batches of a pair still to be scored (main process), or ``None`` when its predictions are complete."""
    planned, layout = outcome.planned, plan.layout
    store = layout.predictions(planned.slug, test.slug)
    if not plan.force:
        problem = store.problem(key, [r.image for r in test.records])
        meta = store.meta()
        if problem is None:
            log.info("%s on %s: finished earlier, skipped (use --force to redo)", planned.label, test.label)
            _recall_settings(outcome, meta, layout.root)
            return None
        if meta is not None and meta.get("fingerprint") == key:
            log.warning("%s on %s: scoring again: %s", planned.label, test.label, problem)
        elif meta is not None:
            log.info("%s on %s: scoring again: %s changed since it was scored", planned.label, test.label,
                     _what_changed(meta.get("inputs"), inputs))
    if plan.force:
        for journal in layout.journals(planned.slug, test.slug):
            journal.path.unlink()
    scored = _scored_batches(plan, outcome, test, header)
    total = len(batches(len(test.records), planned.batch_size))
    if scored:
        log.info("%s on %s: resuming; %d of %d batches were scored before", planned.label, test.label, len(scored),
                 total)
    return [batch for batch in range(total) if batch not in scored]


def _what_changed(before: dict[str, str] | None, now: dict[str, str]) -> str:
    """Which parts of a pair's inputs differ from those its predictions were made from, in words."""
    if not isinstance(before, dict):
        return "its settings or inputs"
    changed = [CHANGED.get(part, part) for part in sorted({*before, *now}) if before.get(part) != now.get(part)]
    return ", ".join(changed) or "its settings"


def _recall_settings(outcome: ModelOutcome, meta: dict[str, Any], root: Path) -> None:
    """The model's recorded settings, from the predictions it made, when this launch does not build it: a resumed
    run publishes the settings the first run did."""
    if outcome.config is None and meta.get("model_config") is not None:
        outcome.config = absolute_paths(meta["model_config"], root)
        outcome.preprocessing = meta.get("preprocessing")


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
    journal = layout.journal(planned.slug, test.slug, group.index, group.count)
    bar = progress.bar(total=len(positions), desc=f"{planned.label} | {test.label}", unit="img",
                       enabled=plan.progress)
    try:  # whatever fails here is reported to the main process, so no process waits for this one
        all_paths = test.paths()
        journal.open(header)
        model = outcome.built(plan)
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

        torch.manual_seed(batch_seed(plan.suite.seed, first_image))


def _prediction(record, score) -> Prediction:
    return Prediction(record.image, score.value, record.mos, record.mos_raw, score.error, score.text)


def _merge_pair(plan: RunPlan, outcome: ModelOutcome, test: TestSet, inputs: dict[str, str], header: dict[str, Any],
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
        "fingerprint": fingerprint(inputs),
        "inputs": inputs,
        "model": planned.entry.name,
        "label": planned.label,
        # paths inside the run folder relative to it, so a copied or published folder names no machine's paths
        "model_config": None if outcome.config is None else relative_paths(outcome.config, layout.root),
        "preprocessing": outcome.preprocessing,
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
