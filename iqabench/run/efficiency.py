"""Measuring a model's latency and memory once per suite run, on prepared images of its first test set.

The measurement is cached in the run's folder under a fingerprint of the pair
and the efficiency settings, so a resumed run reuses it. It runs in the main
process only; under a launch of several processes the others wait, so the
device is quiet. On CPU no peak memory is claimed (see
:data:`CPU_MEMORY_NOT_MEASURED`).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

from iqabench.contracts.model import Model
from iqabench.efficiency import measure as efficiency
from iqabench.errors import IQABenchError
from iqabench.files import atomic_write_json, read_json
from iqabench.provenance import fingerprint
from iqabench.run.outcome import ModelOutcome
from iqabench.run.pair_scoring import pair_fingerprint
from iqabench.run.plan import RunPlan, TestSet

log = logging.getLogger("iqabench.run.runner")


def measure_model(plan: RunPlan, outcome: ModelOutcome, test: TestSet, launched: int) -> None:
    """Time the model on prepared images of ``test`` (main process), unless measured earlier with these settings.

    Under a launch of several processes the others have finished scoring and wait for this one, so the
    measurement runs alone on its device; the record says so.
    """
    spec = plan.suite.efficiency
    if not spec.enabled or not test.records:
        return
    planned = outcome.planned
    path = plan.layout.efficiency(planned.slug)
    key = fingerprint({"pair": pair_fingerprint(plan, outcome, test), "batch": planned.batch_size,
                       "device": plan.device, **spec.model_dump()})
    if not plan.force and read_json(path).get("fingerprint") == key:
        return
    try:
        model = outcome.built(plan)
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
    from iqabench.scoring.loader import iterate_batches

    draft_size = model.decode_size() if test.reading.jpeg_draft else None
    for batch in iterate_batches(test.paths()[:count], model.preprocessor(), batch_size=8, num_workers=0,
                                 resize=test.resize, reading=test.reading, draft_size=draft_size):
        yield [item.item for item in batch if item.error is None]
