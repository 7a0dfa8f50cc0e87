"""One leaderboard from the output folders of runs that each hold part of a suite.

A suite's (model, test set) pairs can be split over independent jobs (``iqabench
run SUITE --pairs i/n``, one per task of a SLURM array, each with its own
``--out``). :func:`merge_runs` joins their folders into one: it refuses
folders of different suites (suite SHA-256) or code (git commit, iqabench
version), and pairs that two folders hold with different predictions; it
copies the prediction files, failure tracebacks and efficiency records into
the merged folder, checks every prediction file against its checksum, and
recomputes the metrics from the copies with the very function a run uses, so
the merged leaderboard is the one a single run of all pairs would write.
Checkpoints are not copied: model options keep pointing into the folders that
trained them.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from iqabench.errors import IQABenchError
from iqabench.files import atomic_write_json, read_json
from iqabench.provenance import command_line, portable
from iqabench.reports.results import pair_result
from iqabench.reports.schema import (
    ModelRecord,
    PairResult,
    Results,
    ResultsError,
    TestSetContent,
    TestSetRecord,
    read_results,
)
from iqabench.reports.significance import significance_record
from iqabench.run.layout import RunLayout

Run = tuple[Path, Results]


class MergeError(IQABenchError):
    """Output folders that cannot be joined into one leaderboard."""


def merge_runs(folders: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Join the output folders of runs of one suite into ``out``; returns the merged results (also written)."""
    folders = [Path(folder) for folder in folders]
    target = RunLayout(out)
    if len(folders) < 2:
        raise MergeError("--merge needs at least two output folders to join.")
    if target.root.resolve() in {folder.resolve() for folder in folders}:
        raise MergeError(f"--out {target.root} is one of the folders being merged; write the merged leaderboard "
                         "to a new folder.")
    runs = [_read_run(folder) for folder in folders]
    _same(runs, lambda r: r.suite.sha256, "suite files (SHA-256)",
          "Merge only the parts of one suite, run from the same suite file.")
    _same(runs, lambda r: (r.provenance.git_commit, r.provenance.versions.get("iqabench")),
          "code versions (git commit, iqabench version)",
          "Numbers from different code are not comparable; run every part with the same checkout.")
    dirty = sorted({r.provenance.git_commit or "" for _, r in runs} - {""})
    if any(commit.endswith("-dirty") for commit in dirty):
        warnings.warn(f"the runs were made from a checkout with uncommitted changes ({dirty[0]}); iqabench cannot "
                      "check that they ran the same code.", stacklevel=2)
    pairs = _pick_pairs(runs)
    models = _pick_models(runs, pairs)
    tests = _pick_tests(runs)
    existing = read_json(target.results)
    if target.results.exists() and "merged_from" not in existing:
        raise MergeError(f"{target.root} holds the results of a run, not of a merge; choose another --out.")
    if not target.results.exists() and target.root.is_dir() and any(target.root.iterdir()):
        # a run interrupted before its results, or any other folder: merging would delete its predictions
        raise MergeError(f"{target.root} is not empty and holds no merged results; choose a new or empty --out.")
    with target.lock(command_line()):
        for sub in ("predictions", "failures", "efficiency", "test_sets"):
            shutil.rmtree(target.root / sub, ignore_errors=True)
        shutil.copyfile(runs[0][0] / "suite.yaml", target.suite_copy)
        results = _assemble(runs, pairs, models, tests, target).to_json()
        atomic_write_json(target.results, results)
    return results


def _read_run(folder: Path) -> Run:
    raw = read_json(folder / "results.json")
    if not raw:
        raise MergeError(f"{folder} has no readable results.json; pass the --out folders of `iqabench run`.")
    if "launch" not in raw or "selection" not in raw:
        raise MergeError(f"{folder}/results.json was written by an iqabench without merge support; run that part "
                         "again with this version.")
    try:
        return folder, read_results(raw)
    except ResultsError as exc:
        raise MergeError(f"{folder}/results.json: {exc}") from None


def _same(runs: list[Run], key, described: str, advice: str) -> None:
    """Refuse folders that differ in ``key`` (naming each group of folders and its value)."""
    values = {}
    for folder, results in runs:
        values.setdefault(key(results), []).append(str(folder))
    if len(values) > 1:
        groups = "; ".join(f"{', '.join(names)}: {value}" for value, names in values.items())
        raise MergeError(f"the folders come from different {described}: {groups}. {advice}")


def _pick_pairs(runs: list[Run]) -> dict[tuple[str, str], Path]:
    """Which folder each pair is taken from; a pair held twice must have the same predictions in both.

    A pair a run holds but never scored (its model's training failed) is taken only if no folder scored it.
    """
    chosen: dict[tuple[str, str], tuple[Path, PairResult]] = {}
    for folder, results in runs:
        for pair in results.results:
            key = (pair.model, pair.test_set)
            if key not in chosen or chosen[key][1].status == "missing":
                chosen[key] = (folder, pair)
                continue
            first_folder, first = chosen[key]
            if pair.status != "missing" and (_checksum(first) != _checksum(pair) or first.status != pair.status):
                raise MergeError(
                    f"{key[0]} on {key[1]} is in both {first_folder} and {folder} with different predictions; "
                    "merge only folders that split the pairs between them (e.g. --pairs i/n), or remove one.")
    return {key: folder for key, (folder, _) in chosen.items()}


def _checksum(pair: PairResult) -> str | None:
    return (pair.meta or {}).get("csv_sha256")


def _pick_models(runs: list[Run], pairs: dict[tuple[str, str], Path]) -> dict[str, tuple[ModelRecord, Path]]:
    """Each model's entry, from the folder holding its first test set (where a full run measures its efficiency)."""
    position = {test.key: test.position for _, results in runs for test in results.test_sets}
    found: dict[str, dict[Path, ModelRecord]] = {}
    for folder, results in runs:
        for model in results.models:
            seen = next(iter(found.get(model.key, {}).items()), None)
            if seen is not None and (seen[1].name, _trained(seen[1])) != (model.name, _trained(model)):
                raise MergeError(f"model {model.label!r} is a different model or training in {seen[0]} and "
                                 f"{folder}; merge only the parts of one suite run with the same settings.")
            found.setdefault(model.key, {})[folder] = model
    chosen = {}
    for key, by_folder in found.items():
        held = sorted((position[test], str(source)) for (model, test), source in pairs.items()
                      if model == key and source in by_folder)
        source = Path(held[0][1]) if held else next(iter(by_folder))
        chosen[key] = (by_folder[source], source)
    return chosen


def _trained(model: ModelRecord) -> str | None:
    return (model.training or {}).get("fingerprint")


def _pick_tests(runs: list[Run]) -> dict[str, TestSetRecord]:
    """Each test set's entry; every part must have read the same data (labels, and the image files)."""
    tests: dict[str, TestSetRecord] = {}
    read_in: dict[str, Path] = {}
    for folder, results in runs:
        for test in results.test_sets:
            if test.content is None:
                raise MergeError(f"{folder}/results.json does not record what its test sets' images hold (written "
                                 "by an older iqabench); run that part again with this version.")
            known = tests.get(test.key)
            if known is not None and (known.count, known.split, known.dataset) != (test.count, test.split,
                                                                                   test.dataset):
                raise MergeError(f"test set {test.label!r} has {known.count} images in one folder and "
                                 f"{test.count} in {folder}: the parts read different data; point every part at "
                                 "the same data root.")
            if known is not None and known.content != test.content:
                raise MergeError(
                    f"test set {test.label!r} was read with different {_differs(known.content, test.content)} in "
                    f"{read_in[test.key]} and {folder}: the parts read different data, so their numbers cannot share "
                    "a table. Point every part at the same data (a copy made with its files' times kept, `cp -a` or "
                    "`rsync -a`, reads the same), or run every part with --hash-images, which compares the images' "
                    "bytes.")
            tests.setdefault(test.key, test)
            read_in.setdefault(test.key, folder)
    return tests


def _differs(first: TestSetContent, second: TestSetContent) -> str:
    if first.labels != second.labels:
        return "labels (image names or scores)"
    if first.images_by != second.images_by:
        return f"image fingerprints (by {first.images_by} in one, by {second.images_by} in the other)"
    return f"image files (by {first.images_by})"


def _assemble(runs: list[Run], pairs: dict[tuple[str, str], Path], models: dict[str, tuple[ModelRecord, Path]],
              tests: dict[str, TestSetRecord], target: RunLayout) -> Results:
    first = runs[0][1]
    suite = first.suite
    by_model = sorted(models.values(), key=lambda entry: entry[0].position)
    by_test = sorted(tests.values(), key=lambda t: t.position)
    results = []
    for model, _ in by_model:
        for test in by_test:
            source = pairs.get((model.key, test.key))
            if source is None:
                continue
            layout = RunLayout(source)
            _copy(layout.predictions(model.key, test.key).csv_path, target.root / "predictions" / model.key)
            _copy(layout.predictions(model.key, test.key).meta_path, target.root / "predictions" / model.key)
            _copy(layout.failure(model.key, test.key), target.root / "failures" / model.key)
            store = target.predictions(model.key, test.key)
            damage = store.damage() if store.meta_path.exists() else None
            if damage:
                raise MergeError(f"{layout.predictions(model.key, test.key).csv_path}: {damage}; resume that "
                                 "part with `iqabench run` to score it again.")
            failure = target.failure_summary(model.key, test.key)
            _copy(layout.test_labels(test.key), target.root / "test_sets")
            pair = pair_result(store, failure, model=model.key, test_set=test.key, lower_better=model.lower_better,
                               fit=suite.correlation, bootstrap=suite.bootstrap, seed=suite.seed,
                               labels=target.test_labels(test.key))
            if pair.status == "failed":
                pair.traceback = str(target.failure(model.key, test.key))
            results.append(pair)
    entries = []
    for model, folder in by_model:
        source = RunLayout(folder)
        for what in ("training", "efficiency"):
            _copy(source.failure(model.key, what), target.root / "failures" / model.key)
        _copy(source.efficiency(model.key), target.root / "efficiency")
        entries.append({**model.model_dump(), "efficiency": read_json(target.efficiency(model.key)) or None})
    held = [[m.key, t.key] for m, _ in by_model for t in by_test if (m.key, t.key) in pairs]
    suite_pairs = next((r.selection.suite_pairs for _, r in runs if r.selection),
                       len(first.models) * len(first.test_sets))
    selection = None if len(held) == suite_pairs else {"models": None, "tests": None, "pairs": None, "held": held,
                                                       "suite_pairs": suite_pairs}
    merged = {
        "suite": suite.model_dump(),
        "provenance": {**first.provenance.model_dump(), "command": command_line(),
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "launch": None,
        "selection": selection,
        "merged_from": [
            {"folder": str(folder), "held": [[m, t] for (m, t), source in pairs.items() if source == folder],
             "launch": None if r.launch is None else r.launch.model_dump(), "command": r.provenance.command,
             "created": r.provenance.created, "selection": None if r.selection is None else r.selection.model_dump()}
            for folder, r in runs
        ],
        "test_sets": [test.model_dump() for test in by_test],
        "models": entries,
        "results": [pair.model_dump() for pair in results],
        "reference": None if first.reference is None else first.reference.model_dump(),
        "seconds": sum(r.seconds or 0.0 for _, r in runs),
    }
    results = Results.model_validate(portable(merged))
    results.significance = significance_record(results, target.root)
    return results


def _copy(path: Path, folder: Path) -> None:
    if path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, folder / path.name)
