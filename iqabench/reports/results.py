"""Turn a run's prediction files into ``results.json`` and the leaderboard.

The metrics are recomputed from the prediction files on every run (they are
cheap and seeded), so a resumed run reports exactly the numbers of the first.
Predictions of lower-is-better models (NIQE, BRISQUE) are negated before
correlating, so every correlation reads "higher is better".
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iqabench.errors import IQABenchError
from iqabench.files import atomic_write_json, read_json
from iqabench.provenance import portable, run_provenance
from iqabench.reports import metrics
from iqabench.reports.groups import group_results, read_test_labels, write_test_labels
from iqabench.reports.leaderboard import write_leaderboard
from iqabench.reports.schema import InputRecord, LaunchRecord, PairResult, Results
from iqabench.reports.significance import significance_record
from iqabench.run.predictions import PredictionStore

if TYPE_CHECKING:
    from iqabench.run.outcome import ModelOutcome
    from iqabench.run.plan import RunPlan

#: the columns a reported-numbers CSV must have (``table``, ``source`` and others are optional)
REFERENCE_COLUMNS = ("model", "dataset", "plcc", "srcc")
#: a reference table is a few hundred rows; anything far larger is not one (and is not read whole)
REFERENCE_MAX_BYTES = 5 * 2**20


def read_reference(path: Path) -> list[dict[str, Any]]:
    """Rows of a reported-numbers CSV: table, model, dataset, plcc, srcc, source.

    Anything else (another kind of file, a cut row, a value that is not a correlation) is an
    :class:`IQABenchError` naming the file and the line, so a suite's ``reference:`` is checked before any work.
    """
    path = Path(path)
    expected = f"a CSV with the columns {', '.join(REFERENCE_COLUMNS)} (see leaderboards/reference/)"
    with path.open("rb") as handle:
        data = handle.read(REFERENCE_MAX_BYTES + 1)
    if len(data) > REFERENCE_MAX_BYTES:
        raise IQABenchError(f"{path} is larger than {REFERENCE_MAX_BYTES // 2**20} MiB: not a reference table, "
                            f"which is {expected}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IQABenchError(f"{path} is not UTF-8 text: not a reference table, which is {expected}.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    absent = [column for column in REFERENCE_COLUMNS if column not in (reader.fieldnames or [])]
    if absent:
        raise IQABenchError(f"{path} has no column(s) {', '.join(absent)}: it is not a reference table, which is "
                            f"{expected}.")
    rows = []
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row or any(row.get(column) is None for column in REFERENCE_COLUMNS):
            raise IQABenchError(f"{where}: the row does not have one value per column; it is cut or has extra "
                                "commas (quote values that contain commas).")
        for key in ("plcc", "srcc"):
            row[key] = _correlation(row[key], f"{where}: {key}")
        rows.append(row)
    return rows


def _correlation(text: str, where: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not -1.0 <= value <= 1.0:
        raise IQABenchError(f"{where} is {text!r}, not a correlation (a number in [-1, 1], or empty if not reported).")
    return value


def weights_record(entry: Any) -> dict[str, Any]:
    """Where a row's weights come from: trained here, a released checkpoint (with why), or no training at all."""
    if entry.train:
        return {"kind": "trained here", "note": None}
    if entry.released:
        return {"kind": "released checkpoint", "note": entry.released}
    return {"kind": "not trained", "note": None}


def pair_result(store: PredictionStore, failure: str | None, *, model: str, test_set: str, lower_better: bool,
                fit: str, bootstrap: int, seed: int, labels: Path | None = None) -> PairResult:
    """The metrics of one (model, test set) pair from its prediction file, or why there are none.

    ``labels``: the test set's distortion labels (``test_sets/<test>.csv``), for the results per distortion type.
    """
    if not store.csv_path.exists():
        if failure is not None:
            return PairResult(model=model, test_set=test_set, status="failed", error=failure)
        return PairResult(model=model, test_set=test_set, status="missing")
    rows = store.read()
    scored = [r for r in rows if r.prediction is not None]
    sign = -1.0 if lower_better else 1.0
    pred = [sign * r.prediction for r in scored]
    gt = [r.mos for r in scored]
    values = metrics.evaluate(pred, gt, fit=fit, bootstrap=bootstrap, seed=seed)
    errors: dict[str, int] = {}
    for r in rows:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    return PairResult(
        model=model,
        test_set=test_set,
        status="ok",
        count=len(rows),
        scored=len(scored),
        unscored=len(rows) - len(scored),
        sign=sign,
        metrics={name: metric.to_dict() for name, metric in values.items()},
        failure_reasons=dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        meta=store.meta(),
        groups=group_results(rows, None if labels is None else read_test_labels(labels), sign=sign, fit=fit),
    )


#: recomputed values may differ from recorded ones in their last bits (another machine's BLAS, a SciPy release):
#: a difference larger than this is an edit, not arithmetic
RECOMPUTED_TOLERANCE = 1e-4


def verify_against_predictions(results: Results, run_dir: Path) -> list[str]:
    """What in ``results`` the run's prediction files contradict: a file that fails the checksum the results (and
    its meta) record, or a recorded metric or count that the file does not give. Pairs whose files are absent (a
    results folder copied without ``predictions/``) cannot be checked and are not reported.

    This lets ``iqabench leaderboard RUN`` refuse to draw figures from damaged files, or to publish numbers edited
    into ``results.json``.
    """
    lower_better = {model.key: model.lower_better for model in results.models}
    tests = {test.key for test in results.test_sets}
    problems = []
    for pair in results.results:
        unknown = [f"model {pair.model!r} (no entry in `models`)"] if pair.model not in lower_better else []
        unknown += [f"test set {pair.test_set!r} (no entry in `test_sets`)"] if pair.test_set not in tests else []
        if unknown:
            problems.append(f"{pair.model} on {pair.test_set}: results.json has numbers for {' and '.join(unknown)}")
            continue
        if pair.status != "ok":
            continue
        store = PredictionStore(run_dir / "predictions" / pair.model, pair.test_set)
        if not store.csv_path.exists():
            continue
        where = f"{pair.model} on {pair.test_set}"
        actual = hashlib.sha256(store.csv_path.read_bytes()).hexdigest()
        if actual != (pair.meta or {}).get("csv_sha256") or store.damage():
            problems.append(f"{where}: {store.csv_path} does not match the checksum results.json records for it "
                            "(cut, emptied or edited)")
            continue
        try:
            again = pair_result(store, None, model=pair.model, test_set=pair.test_set,
                                lower_better=lower_better[pair.model], fit=results.suite.correlation,
                                bootstrap=0, seed=results.suite.seed)
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{where}: {store.csv_path} cannot be read ({type(exc).__name__}: {exc})")
            continue
        for name, metric in again.metrics.items():
            shown = pair.metrics[name].value if name in pair.metrics else None
            if not _same_number(shown, metric.value):
                problems.append(f"{where}: results.json says {name.upper()} {shown!r}, but its predictions give "
                                f"{metric.value!r}")
        for key in ("count", "scored", "unscored"):
            if getattr(pair, key) != getattr(again, key):
                problems.append(f"{where}: results.json says {key} {getattr(pair, key)!r}, its predictions "
                                f"{getattr(again, key)!r}")
    return problems


def _same_number(recorded: float | None, computed: float | None) -> bool:
    if computed is None or math.isnan(computed):
        return recorded is None or math.isnan(recorded)
    return recorded is not None and math.isclose(recorded, computed, rel_tol=0.0, abs_tol=RECOMPUTED_TOLERANCE)


def launch_record(processes: list[dict[str, Any]]) -> LaunchRecord:
    """How many processes, machines and devices scored a run (``processes``: one entry per process)."""
    hosts = list(dict.fromkeys(p["host"] for p in processes))
    devices = list(dict.fromkeys(f"{p['host']}:{p['device']}" for p in processes))
    return LaunchRecord(processes=len(processes), hosts=len(hosts), devices=len(devices),
                        per_process=[{"index": p["index"], "host": p["host"], "device": p["device"]}
                                     for p in processes])


def build_results(plan: RunPlan, outcomes: list[ModelOutcome], *, elapsed: float,
                  launch: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``results.json`` and ``leaderboard.md`` of a run, from its plan, what became of each model and its files.

    Returns the document as written (:class:`~iqabench.reports.schema.Results` reads it back typed).
    ``launch`` describes each process of the run (:func:`iqabench.run.distributed.describe_process`).
    """
    suite, layout = plan.suite, plan.layout
    for test in plan.tests:
        write_test_labels(layout.test_labels(test.slug), test.records)
    pairs = []
    for outcome in outcomes:
        model = outcome.planned
        for test in plan.tests:
            if not plan.holds(model, test):
                continue
            failure = layout.failure_summary(model.slug, test.slug)
            result = pair_result(layout.predictions(model.slug, test.slug), failure, model=model.slug,
                                 test_set=test.slug, lower_better=model.registered.cls.lower_better,
                                 fit=suite.correlation, bootstrap=suite.bootstrap, seed=suite.seed,
                                 labels=layout.test_labels(test.slug))
            if result.status == "failed":
                result.traceback = str(layout.failure(model.slug, test.slug))
            result.input = InputRecord.model_validate(plan.test_for(model, test).input)
            pairs.append(result)
    models = []
    for outcome in outcomes:
        model = outcome.planned
        models.append(
            {
                "key": model.slug,
                "position": model.position,
                "label": model.label,
                "name": model.entry.name,
                "options": outcome.options,
                "config": outcome.config,
                "plugin": model.registered.provenance(),
                "reference": model.entry.reference,
                "lower_better": model.registered.cls.lower_better,
                "score_range": list(model.registered.cls.score_range),
                "preprocessing": outcome.preprocessing or model.registered.cls.traits.preprocessing,
                "training": outcome.training,
                "weights": weights_record(model.entry),
                "efficiency": read_json(layout.efficiency(model.slug)) or None,
            }
        )
    reference = None
    if plan.reference_file is not None:
        reference = {"file": str(plan.reference_file), "rows": plan.reference_rows}
    results = Results.model_validate(portable({
        "suite": {
            "name": suite.name,
            "description": suite.description,
            "notes": suite.notes,
            "protocol": suite.protocol,
            "file": str(plan.suite_file),
            "sha256": plan.suite_sha256,
            "correlation": suite.correlation,
            "bootstrap": suite.bootstrap,
            "significance": suite.significance.model_dump(),
            "seed": suite.seed,
            "device": plan.device,
            "dtype": suite.dtype,
            "batch_size": suite.batch_size,
            "data_root": None if plan.data_root is None else str(plan.data_root),
        },
        "provenance": run_provenance(),
        "launch": launch_record(launch or [{"index": 0, "host": socket.gethostname(), "device": plan.device}]
                                ).model_dump(),
        "selection": None if plan.selection is None else plan.selection.to_dict(),
        "test_sets": [test.describe() for test in plan.tests],
        "models": models,
        "results": [pair.model_dump() for pair in pairs],
        "reference": reference,
        "seconds": elapsed,
    }))
    results.significance = significance_record(results, layout.root)
    document = results.to_json()
    atomic_write_json(layout.results, document)
    write_leaderboard(results, layout.root)
    return document
