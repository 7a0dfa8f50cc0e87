"""Run a suite: train -> score -> metrics -> efficiency -> leaderboard.

Everything a run produces lives under its output folder::

    OUT/
      checkpoints/<model>/          trained checkpoints (renamed into place when training ends)
      predictions/<model>/<test>.csv + .meta.json
      efficiency/<model>.json
      failures/<model>/<test>.txt    tracebacks of pairs that failed
      results.json, leaderboard.md, run.log

A re-run resumes: finished training, prediction files and efficiency
measurements whose fingerprints match the current settings are reused, so a
resumed run recomputes only the metrics (seeded, hence identical). A failure in
one pair is recorded and the suite goes on.
"""

from __future__ import annotations

import gc
import logging
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from iqabench import efficiency as efficiency_module
from iqabench.dataset import Dataset, DatasetIndex, Record, dataset_root, resolve_data_root
from iqabench.errors import DatasetNotFoundError, IQABenchError
from iqabench.loader import Resize, iterate_batches
from iqabench.model import Model, Score
from iqabench.options import check_options
from iqabench.predictions import Prediction, PredictionStore, atomic_write_json
from iqabench.provenance import fingerprint
from iqabench.registry import PluginRegistry, default_registry
from iqabench.results import build_results
from iqabench.suite import DatasetRef, ModelEntry, Suite
from iqabench.trainer import TrainingSet

log = logging.getLogger("iqabench.runner")

RESERVED_MODEL_OPTIONS = ("device", "dtype")


def slug(text: str) -> str:
    """A file-name-safe key; '+' is spelled out so that CLIP-IQA and CLIP-IQA+ stay apart."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("+", "-plus")).strip("-").lower() or "x"


class DataMissingError(IQABenchError):
    """Datasets a suite needs are not on disk; the message carries the `data check` table."""


@dataclass
class TestSet:
    group: str
    key: str
    label: str
    ref: DatasetRef
    dataset: Dataset
    index: DatasetIndex
    records: list[Record]


@dataclass
class ModelRun:
    entry: ModelEntry
    key: str
    cls: type[Model]
    options: dict[str, Any]
    training: dict[str, Any] | None = None
    model: Model | None = field(default=None, repr=False)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise IQABenchError(f"device {device!r} was asked for but torch sees no CUDA GPU; use --device cpu.")
    return device


class Runner:
    """Runs one suite into one output folder."""

    def __init__(
        self,
        suite: Suite,
        suite_path: Path,
        suite_hash: str,
        out_dir: Path,
        *,
        data_root: str | None = None,
        force: bool = False,
        only_models: list[str] | None = None,
        device: str | None = None,
        registry: PluginRegistry | None = None,
        progress: bool = True,
    ) -> None:
        self.suite = suite
        self.suite_path = Path(suite_path)
        self.suite_hash = suite_hash
        self.out = Path(out_dir)
        self.force = force
        self.registry = registry or default_registry()
        self.progress = progress
        self.device = resolve_device(device or suite.device)
        self.data_root = resolve_data_root(data_root, self._suite_relative(suite.data_root))
        self.entries = self._select_models(only_models)

    def _suite_relative(self, value: str | None) -> str | None:
        if value is None or value.startswith(("~", "/", "$")):
            return value
        return str((self.suite_path.parent / value).resolve())

    def _select_models(self, only: list[str] | None) -> list[ModelEntry]:
        if not only:
            return list(self.suite.models)
        chosen = [m for m in self.suite.models if m.name in only or m.display in only]
        unknown = [name for name in only if not any(name in (m.name, m.display) for m in self.suite.models)]
        if unknown:
            available = ", ".join(m.display for m in self.suite.models)
            raise IQABenchError(f"--models names {unknown} that are not in the suite; its models: {available}.")
        return chosen

    # -- preparation -------------------------------------------------------------------------------------------

    def _check_names(self) -> None:
        """Fail before any work on unknown models, trainers, datasets or options."""
        keys = [slug(entry.display) for entry in self.entries]
        clashes = sorted({k for k in keys if keys.count(k) > 1})
        if clashes:
            raise IQABenchError(
                f"model labels {[e.display for e in self.entries if slug(e.display) in clashes]} share the folder "
                f"name(s) {clashes}; give them labels that differ in letters or digits."
            )
        for entry in self.entries:
            cls = self.registry.model(entry.name)
            check_options(cls, entry.options, f"model {entry.name!r}", RESERVED_MODEL_OPTIONS)
            if entry.train:
                trainer_name = entry.trainer or cls.trainer
                if not trainer_name:
                    raise IQABenchError(
                        f"model {entry.name!r} has `train: true` but no trainer; name one with `trainer:` "
                        f"(available: {', '.join(self.registry.names('trainer'))})."
                    )
                trainer_cls = self.registry.trainer(trainer_name)
                check_options(trainer_cls, entry.trainer_options, f"trainer {trainer_name!r}")
        for ref in self._all_dataset_refs():
            cls = self.registry.dataset(ref.dataset)
            check_options(cls, ref.options, f"dataset {ref.dataset!r}", ("root",))

    def _all_dataset_refs(self, include_tests: bool = True) -> list[DatasetRef]:
        refs = list(self.suite.train.datasets) if self.suite.train else []
        if include_tests:
            for group in self.suite.test_groups().values():
                refs.extend(group)
        return refs

    def _open_dataset(self, ref: DatasetRef) -> tuple[Dataset, DatasetIndex]:
        cls = self.registry.dataset(ref.dataset)
        root = dataset_root(cls, self.data_root, self._suite_relative(ref.root))
        dataset = cls(root=root, **ref.options)
        return dataset, dataset.load()

    def _load_datasets(self, include_tests: bool = True) -> tuple[list[TrainingSet], list[TestSet]]:
        problems: list[str] = []
        opened: dict[str, tuple[Dataset, DatasetIndex]] = {}
        for ref in self._all_dataset_refs(include_tests):
            key = fingerprint(ref.model_dump())
            if key in opened:
                continue
            try:
                opened[key] = self._open_dataset(ref)
            except DatasetNotFoundError as exc:
                problems.append(str(exc))
        if problems:
            raise DataMissingError(self._data_missing_message(problems))
        training = []
        if self.suite.train:
            for ref in self.suite.train.datasets:
                dataset, index = opened[fingerprint(ref.model_dump())]
                records = index.split(ref.split or "train")
                training.append(TrainingSet(name=ref.dataset, root=Path(dataset.root), records=records))
        tests = []
        for group, refs in (self.suite.test_groups() if include_tests else {}).items():
            for ref in refs:
                dataset, index = opened[fingerprint(ref.model_dump())]
                split = ref.split or dataset.default_test_split
                label = ref.label or dataset.title
                key = slug(f"{ref.label or ref.dataset}-{split}")
                tests.append(TestSet(group, key, label, ref, dataset, index, index.split(split)))
        keys = [t.key for t in tests]
        if len(set(keys)) != len(keys):
            raise IQABenchError("two test sets have the same dataset and split; give them distinct `label:`s.")
        return training, tests

    def _data_missing_message(self, problems: list[str]) -> str:
        lines = ["the suite needs datasets that are not on disk.", ""]
        try:
            from iqabench.commands.data import check_datasets, format_check_table

            names = sorted({ref.dataset for ref in self._all_dataset_refs()})
            lines += [format_check_table(check_datasets(self.data_root, names, self.registry)), ""]
        except ImportError:
            pass
        lines.append(problems[0])
        if len(problems) > 1:
            lines.append(f"({len(problems) - 1} more dataset(s) missing; the table above lists them.)")
        return "\n".join(lines)

    # -- the run -------------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.out / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("iqabench").addHandler(handler)
        try:
            return self._run()
        finally:
            logging.getLogger("iqabench").removeHandler(handler)
            handler.close()

    def train_only(self) -> dict[str, Any]:
        """Train every selected ``train: true`` model into ``checkpoints/`` exactly as :meth:`run` would.

        A later ``iqabench run`` of the same suite and output folder reuses these checkpoints.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_names()
        training, _ = self._load_datasets(include_tests=False)
        trained = {}
        for entry in self.entries:
            if not entry.train:
                continue
            run = ModelRun(entry=entry, key=slug(entry.display), cls=self.registry.model(entry.name),
                           options=dict(entry.options))
            self._train(run, training)
            trained[entry.display] = run.options
        return trained

    def _run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self._check_names()
        training, tests = self._load_datasets()
        shutil.copyfile(self.suite_path, self.out / "suite.yaml")
        runs = []
        for entry in self.entries:
            cls = self.registry.model(entry.name)
            run = ModelRun(entry=entry, key=slug(entry.display), cls=cls, options=dict(entry.options))
            runs.append(run)
            try:
                if entry.train:
                    self._train(run, training)
            except Exception as exc:  # recorded; the suite goes on with other models
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._record_failure(run, "training", exc)
                run.training = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                continue
            for test in tests:
                self._score_pair(run, test)
            self._measure(run, tests)
            self._release(run)
        results = build_results(self, runs, tests, elapsed=time.perf_counter() - started)
        return results

    # -- training ------------------------------------------------------------------------------------------------

    def _train(self, run: ModelRun, training: list[TrainingSet]) -> None:
        entry = run.entry
        trainer_name = entry.trainer or run.cls.trainer
        trainer_cls = self.registry.trainer(trainer_name)
        final = self.out / "checkpoints" / run.key
        partial = self.out / "checkpoints" / f"{run.key}.partial"
        settings = {
            "trainer": trainer_name,
            "trainer_options": entry.trainer_options,
            "model_options": entry.options,
            "datasets": [(t.name, str(t.root), len(t.records)) for t in training],
            "seed": self.suite.seed,
        }
        key = fingerprint(settings)
        marker = final / "iqabench_training.json"
        if marker.exists() and not self.force:
            info = _read_json(marker)
            if info.get("fingerprint") == key:
                log.info("%s: reusing trained checkpoint %s", entry.display, final)
                run.options.update(_absolute(info["model_options"], final))
                run.training = {"status": "reused", **info}
                return
            log.info("%s: training settings changed; training again", entry.display)
        if final.exists():
            shutil.rmtree(final)
        # A partial folder is only resumed (by trainers that can) if it was started with these settings.
        stamp = partial / "iqabench_partial.json"
        if partial.exists() and (self.force or _read_json(stamp).get("fingerprint") != key):
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stamp, {"fingerprint": key})
        trainer = trainer_cls(**entry.trainer_options)
        log.info("%s: training with %s on %s", entry.display, trainer_name, ", ".join(t.name for t in training))
        torch.manual_seed(self.suite.seed)
        start = time.perf_counter()
        returned = trainer.train(dict(entry.options), training, partial, seed=self.suite.seed, device=self.device)
        elapsed = time.perf_counter() - start
        relative = _relative(returned, partial)
        info = {
            "fingerprint": key,
            "settings": settings,
            "trainer_config": trainer.config(),
            "model_options": relative,
            "seconds": elapsed,
        }
        atomic_write_json(partial / "iqabench_training.json", info)
        stamp.unlink(missing_ok=True)
        partial.rename(final)
        run.options.update(_absolute(relative, final))
        run.training = {"status": "trained", **info}

    # -- scoring -------------------------------------------------------------------------------------------------

    def _model(self, run: ModelRun) -> Model:
        if run.model is None:
            log.info("%s: loading model %s", run.entry.display, run.entry.name)
            run.model = run.cls(**run.options, device=self.device, dtype=run.entry.dtype or self.suite.dtype)
        return run.model

    def _pair_fingerprint(self, run: ModelRun, test: TestSet) -> str:
        return fingerprint(
            {
                "model": run.entry.name,
                "options": run.options,
                "training": (run.training or {}).get("fingerprint"),
                "dataset": test.ref.model_dump(),
                "records": [(r.image, r.mos) for r in test.records],
                "preprocessing": self._resize(test).__dict__,
                "dtype": run.entry.dtype or self.suite.dtype,
            }
        )

    def _resize(self, test: TestSet) -> Resize:
        spec = test.ref.preprocessing or self.suite.preprocessing
        return Resize(shorter_side=spec.shorter_side, max_side=spec.max_side)

    def _score_pair(self, run: ModelRun, test: TestSet) -> None:
        store = PredictionStore(self.out / "predictions" / run.key, test.key)
        key = self._pair_fingerprint(run, test)
        failure_file = self.out / "failures" / run.key / f"{test.key}.txt"
        if store.is_complete(key) and not self.force:
            log.info("%s on %s: finished earlier, skipped (use --force to redo)", run.entry.display, test.label)
            return
        try:
            model = self._model(run)
            rows, stats = self._score(model, run, test)
        except Exception as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._record_failure(run, test.key, exc)
            return
        meta = {
            "fingerprint": key,
            "model": run.entry.name,
            "label": run.entry.display,
            "model_config": model.config(),
            "test_set": test.key,
            "dataset": test.ref.dataset,
            "split": test.records[0].split if test.records else None,
            "count": len(rows),
            "unscored": sum(r.prediction is None for r in rows),
            **stats,
        }
        store.write(rows, meta)
        failure_file.unlink(missing_ok=True)

    def _score(self, model: Model, run: ModelRun, test: TestSet) -> tuple[list[Prediction], dict[str, Any]]:
        batch_size = run.entry.batch_size or self.suite.batch_size
        paths = [Path(test.dataset.root) / r.image for r in test.records]
        scores: list[Score | None] = [None] * len(paths)
        load_errors: dict[int, str] = {}
        bar = tqdm(total=len(paths), desc=f"{run.entry.display} | {test.label}", unit="img", disable=not self.progress)
        start = time.perf_counter()
        with efficiency_module.PeakMemory(self.device) as memory:
            for batch in iterate_batches(
                paths,
                model.preprocessor(),
                batch_size=batch_size,
                num_workers=self.suite.num_workers,
                resize=self._resize(test),
                pin_memory=self.device.startswith("cuda"),
            ):
                ready = [item for item in batch if item.error is None]
                for item in batch:
                    if item.error is not None:
                        load_errors[item.index] = item.error
                        log.warning("%s: %s", test.label, item.error)
                for item, score in zip(ready, score_safely(model, [item.item for item in ready])):
                    scores[item.index] = score
                bar.update(len(batch))
        elapsed = time.perf_counter() - start
        bar.close()
        rows = []
        for index, record in enumerate(test.records):
            score = scores[index]
            error = load_errors.get(index) or (score.error if score is not None else "not scored")
            value = score.value if score is not None and score.error is None else None
            rows.append(Prediction(record.image, value, record.mos, record.mos_raw, None if value is not None else error))
        stats = {
            "seconds": elapsed,
            "end_to_end_images_per_second": len(paths) / elapsed if elapsed > 0 else None,
            "scoring_peak_memory_mib": None if memory.peak_bytes is None else memory.peak_bytes / 2**20,
            "memory_method": memory.method,
            "batch_size": batch_size,
            "num_workers": self.suite.num_workers,
        }
        return rows, stats

    # -- efficiency ----------------------------------------------------------------------------------------------

    def _measure(self, run: ModelRun, tests: list[TestSet]) -> None:
        spec = self.suite.efficiency
        if not spec.enabled or not tests or not tests[0].records:
            return
        batch_size = run.entry.batch_size or self.suite.batch_size
        test = tests[0]
        path = self.out / "efficiency" / f"{run.key}.json"
        key = fingerprint(
            {"pair": self._pair_fingerprint(run, test), "batch": batch_size, "device": self.device, **spec.model_dump()}
        )
        if path.exists() and not self.force and _read_json(path).get("fingerprint") == key:
            return
        try:
            model = self._model(run)
            prepare = model.preprocessor()
            resize = self._resize(test)
            items = []
            for batch in iterate_batches(
                [Path(test.dataset.root) / r.image for r in test.records[: batch_size * 2]],
                prepare,
                batch_size=batch_size,
                num_workers=0,
                resize=resize,
            ):
                items.extend(item.item for item in batch if item.error is None)
            if not items:
                raise IQABenchError(f"no readable image in {test.label} to measure efficiency on")
            result = efficiency_module.measure(
                model, items, batch_size=batch_size, warmup=spec.warmup, repeats=spec.repeats
            )
        except Exception as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._record_failure(run, "efficiency", exc)
            return
        atomic_write_json(path, {"fingerprint": key, "measured_on": test.label, **result.to_dict()})

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _record_failure(self, run: ModelRun, what: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        path = self.out / "failures" / run.key / f"{what}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        log.error("%s: %s failed: %s: %s (traceback in %s)", run.entry.display, what, type(exc).__name__, exc, path)

    def _release(self, run: ModelRun) -> None:
        run.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def score_safely(model: Model, items: list[Any]) -> list[Score]:
    """Score a batch; if the batch raises, score its images one by one so one bad image fails alone."""
    if not items:
        return []
    try:
        scores = model.score_batch(items)
        if len(scores) != len(items):
            raise IQABenchError(f"model {model.name!r} returned {len(scores)} scores for {len(items)} images")
        return scores
    except Exception as exc:
        if len(items) == 1:
            return [Score.failure(f"{type(exc).__name__}: {exc}")]
        log.warning("%s: a batch failed (%s); scoring its images one by one", model.name, exc)
        return [score_safely(model, [item])[0] for item in items]


def _relative(options: dict[str, Any], base: Path) -> dict[str, Any]:
    prefix = str(base.resolve())
    out = {}
    for key, value in options.items():
        if isinstance(value, str) and str(Path(value).resolve()).startswith(prefix):
            out[key] = {"relative_path": str(Path(value).resolve().relative_to(prefix))}
        else:
            out[key] = value
    return out


def _absolute(options: dict[str, Any], base: Path) -> dict[str, Any]:
    return {
        key: str(base / value["relative_path"]) if isinstance(value, dict) and "relative_path" in value else value
        for key, value in options.items()
    }


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
