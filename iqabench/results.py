"""Turn a run's prediction files into ``results.json`` and the leaderboard.

The metrics are recomputed from the prediction files on every run (they are
cheap and seeded), so a resumed run reports exactly the numbers of the first.
Predictions of lower-is-better models (NIQE, BRISQUE) are negated before
correlating, so every correlation reads "higher is better".
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iqabench import metrics
from iqabench.leaderboard import write_leaderboard
from iqabench.predictions import PredictionStore, atomic_write_json
from iqabench.provenance import portable, run_provenance

if TYPE_CHECKING:
    from iqabench.runner import ModelRun, Runner, TestSet

log = logging.getLogger("iqabench.results")


def read_reference(path: Path) -> list[dict[str, Any]]:
    """Rows of a reported-numbers CSV: table, model, dataset, plcc, srcc, source."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("plcc", "srcc"):
            row[key] = float(row[key]) if row.get(key) not in (None, "") else None
    return rows


def pair_result(run: ModelRun, test: TestSet, out: Path, *, fit: str, bootstrap: int, seed: int) -> dict[str, Any]:
    store = PredictionStore(out / "predictions" / run.key, test.key)
    failure = out / "failures" / run.key / f"{test.key}.txt"
    base = {"model": run.key, "test_set": test.key}
    if not store.csv_path.exists():
        if failure.exists():
            lines = failure.read_text().strip().splitlines()
            return {**base, "status": "failed", "error": lines[-1] if lines else "failed", "traceback": str(failure)}
        return {**base, "status": "missing"}
    rows = store.read()
    scored = [r for r in rows if r.prediction is not None]
    sign = -1.0 if run.cls.lower_better else 1.0
    pred = [sign * r.prediction for r in scored]
    gt = [r.mos for r in scored]
    values = metrics.evaluate(pred, gt, fit=fit, bootstrap=bootstrap, seed=seed)
    errors: dict[str, int] = {}
    for r in rows:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    return {
        **base,
        "status": "ok",
        "count": len(rows),
        "scored": len(scored),
        "unscored": len(rows) - len(scored),
        "sign": sign,
        "metrics": {name: metric.to_dict() for name, metric in values.items()},
        "failure_reasons": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        "meta": store.meta(),
    }


def build_results(runner: Runner, runs: list[ModelRun], tests: list[TestSet], *, elapsed: float) -> dict[str, Any]:
    suite = runner.suite
    out = runner.out
    pairs = [
        pair_result(run, test, out, fit=suite.correlation, bootstrap=suite.bootstrap, seed=suite.seed)
        for run in runs
        for test in tests
    ]
    reference = None
    if suite.reference:
        path = (runner.suite_path.parent / suite.reference).resolve()
        if path.exists():
            reference = {"file": str(path), "rows": read_reference(path)}
        else:
            log.warning("reference file %s not found; the leaderboard shows measured numbers only", path)
    models = []
    for run in runs:
        eff_path = out / "efficiency" / f"{run.key}.json"
        models.append(
            {
                "key": run.key,
                "label": run.entry.display,
                "name": run.entry.name,
                "options": run.options,
                "reference": run.entry.reference,
                "lower_better": run.cls.lower_better,
                "score_range": list(run.cls.score_range),
                "preprocessing": run.cls.preprocessing,
                "training": run.training,
                "efficiency": json.loads(eff_path.read_text()) if eff_path.exists() else None,
            }
        )
    results = {
        "suite": {
            "name": suite.name,
            "description": suite.description,
            "notes": suite.notes,
            "protocol": suite.protocol,
            "file": str(runner.suite_path),
            "sha256": runner.suite_hash,
            "correlation": suite.correlation,
            "bootstrap": suite.bootstrap,
            "seed": suite.seed,
            "device": runner.device,
            "dtype": suite.dtype,
            "batch_size": suite.batch_size,
            "data_root": None if runner.data_root is None else str(runner.data_root),
        },
        "provenance": run_provenance(),
        "test_sets": [
            {
                "key": t.key,
                "label": t.label,
                "group": t.group,
                "dataset": t.ref.dataset,
                "split": t.records[0].split if t.records else None,
                "count": len(t.records),
                "dataset_provenance": t.index.provenance.to_dict(),
            }
            for t in tests
        ],
        "models": models,
        "results": pairs,
        "reference": reference,
        "seconds": elapsed,
    }
    results = portable(results)
    atomic_write_json(out / "results.json", results)
    write_leaderboard(results, out)
    return results
