"""Setting up a suite run: everything checked and opened before any work starts.

:func:`plan_run` turns a suite file into a :class:`RunPlan`: every model,
trainer and dataset name looked up, every option checked against its
constructor (names and types), the reference file found, the output labels
checked for clashes and every dataset's label files read (a missing dataset
stops here with the ``data check`` table). :func:`iqabench.runner.evaluate`
then runs the loop. The split follows lm-evaluation-harness, where
``simple_evaluate`` sets up and ``evaluate`` loops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqabench.data_check import check_datasets, format_check_table
from iqabench.dataset import Dataset, DatasetIndex, Record, resolve_data_root
from iqabench.errors import DatasetNotFoundError, IQABenchError, SuiteError
from iqabench.factory import (
    check_dataset_options,
    check_dtype,
    check_model_options,
    check_trainer_options,
    create_dataset,
    resolve_device,
    trainer_for,
)
from iqabench.layout import RunLayout, slug
from iqabench.images import ImageReading
from iqabench.loader import Resize
from iqabench.provenance import fingerprint
from iqabench.registry import Entry, PluginRegistry, default_registry
from iqabench.suite import DatasetRef, ModelEntry, Suite, load_suite
from iqabench.trainer import TrainingSet

log = logging.getLogger("iqabench.plan")


class DataMissingError(IQABenchError):
    """Datasets a suite needs are not on disk; the message carries the `data check` table."""


@dataclass
class TestSet:
    """One column of the leaderboard: a split of a dataset, with its records."""

    group: str
    slug: str
    label: str
    ref: DatasetRef
    dataset: Dataset
    index: DatasetIndex
    #: the split as the suite resolved it ("all" for every record)
    split: str
    records: list[Record]
    resize: Resize
    reading: ImageReading

    def paths(self) -> list[Path]:
        return [self.dataset.image_path(record) for record in self.records]

    def describe(self) -> dict[str, Any]:
        """What results record about the test set."""
        return {"key": self.slug, "label": self.label, "group": self.group, "dataset": self.ref.dataset,
                "split": self.split, "count": len(self.records),
                "dataset_provenance": self.index.provenance.to_dict()}


@dataclass
class PlannedModel:
    """A suite entry resolved: its registered class, checked options and the trainer that trains it."""

    entry: ModelEntry
    slug: str
    registered: Entry
    options: dict[str, Any]
    dtype: str
    batch_size: int
    trainer: str | None = None
    trainer_options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.entry.display


@dataclass
class RunPlan:
    """Everything a run needs, checked: the suite, where it writes, the models, the data."""

    suite: Suite
    suite_file: Path
    suite_sha256: str
    layout: RunLayout
    device: str
    data_root: Path | None
    models: list[PlannedModel]
    training: list[TrainingSet]
    tests: list[TestSet]
    reference_file: Path | None
    registry: PluginRegistry
    force: bool = False
    progress: bool = True


def suite_relative(suite_file: Path, value: str | None) -> str | None:
    """A path written in a suite is relative to the suite's folder."""
    if value is None or value.startswith(("~", "/", "$")):
        return value
    return str((suite_file.parent / value).resolve())


def plan_run(
    suite_file: str | Path,
    out: str | Path | None = None,
    *,
    data_root: str | None = None,
    force: bool = False,
    only_models: list[str] | None = None,
    device: str | None = None,
    registry: PluginRegistry | None = None,
    progress: bool = True,
    include_tests: bool = True,
) -> RunPlan:
    """Read, check and open everything a run of ``suite_file`` into ``out`` (default ``runs/<suite name>``) needs."""
    suite_file = Path(suite_file)
    suite, digest = load_suite(suite_file)
    registry = registry or default_registry()
    models = [_plan_model(entry, suite, registry) for entry in _select(suite, only_models)]
    slugs = [m.slug for m in models]
    clashes = sorted({s for s in slugs if slugs.count(s) > 1})
    if clashes:
        raise IQABenchError(
            f"model labels {[m.label for m in models if m.slug in clashes]} share the folder name(s) {clashes}; "
            "give them labels that differ in letters or digits."
        )
    reference = None
    if suite.reference:
        reference = Path(suite_relative(suite_file, suite.reference))
        if not reference.is_file():
            raise SuiteError(f"{suite_file}: field `reference`: {reference} does not exist; fix the path (it is "
                             "relative to the suite file) or remove the field.")
    for ref in _refs(suite, include_tests):
        check_dataset_options(ref.dataset, ref.options, registry)
    root = resolve_data_root(data_root, suite_relative(suite_file, suite.data_root))
    training, tests = _open_datasets(suite, suite_file, root, registry, include_tests)
    return RunPlan(
        suite=suite, suite_file=suite_file, suite_sha256=digest,
        layout=RunLayout(Path(out) if out is not None else Path("runs") / suite.name),
        device=resolve_device(device or suite.device), data_root=root, models=models, training=training,
        tests=tests, reference_file=reference, registry=registry, force=force, progress=progress,
    )


def _select(suite: Suite, only: list[str] | None) -> list[ModelEntry]:
    if not only:
        return list(suite.models)
    unknown = [name for name in only if not any(name in (m.name, m.display) for m in suite.models)]
    if unknown:
        available = ", ".join(m.display for m in suite.models)
        raise IQABenchError(f"--models names {unknown} that are not in the suite; its models: {available}.")
    return [m for m in suite.models if m.name in only or m.display in only]


def _plan_model(entry: ModelEntry, suite: Suite, registry: PluginRegistry) -> PlannedModel:
    registered = registry.get("model", entry.name)
    planned = PlannedModel(
        entry=entry,
        slug=slug(entry.display),
        registered=registered,
        options=check_model_options(entry.name, entry.options, registry),
        dtype=check_dtype(entry.dtype or suite.dtype, f"model {entry.display!r}: dtype"),
        batch_size=entry.batch_size or suite.batch_size,
    )
    if entry.train:
        planned.trainer = trainer_for(entry.name, entry.trainer, registry)
        planned.trainer_options = check_trainer_options(planned.trainer, entry.trainer_options, registry)
    return planned


def _refs(suite: Suite, include_tests: bool) -> list[DatasetRef]:
    refs = list(suite.train.datasets) if suite.train else []
    if include_tests:
        for group in suite.test_groups().values():
            refs.extend(group)
    return refs


def _open_datasets(
    suite: Suite, suite_file: Path, data_root: Path | None, registry: PluginRegistry, include_tests: bool
) -> tuple[list[TrainingSet], list[TestSet]]:
    problems: list[str] = []
    opened: dict[str, tuple[Dataset, DatasetIndex]] = {}
    for ref in _refs(suite, include_tests):
        key = fingerprint(ref.model_dump())
        if key in opened:
            continue
        try:
            dataset = create_dataset(ref.dataset, root=suite_relative(suite_file, ref.root), data_root=data_root,
                                     registry=registry, **ref.options)
            opened[key] = dataset, dataset.load()
        except DatasetNotFoundError as exc:
            problems.append(str(exc))
    if problems:
        names = sorted({ref.dataset for ref in _refs(suite, include_tests)})
        lines = ["the suite needs datasets that are not on disk.", "",
                 format_check_table(check_datasets(data_root, names, registry)), "", problems[0]]
        if len(problems) > 1:
            lines.append(f"({len(problems) - 1} more dataset(s) missing; the table above lists them.)")
        raise DataMissingError("\n".join(lines))
    training = []
    for ref in suite.train.datasets if suite.train else []:
        dataset, index = opened[fingerprint(ref.model_dump())]
        training.append(TrainingSet(name=ref.dataset, root=Path(dataset.root), records=index.split(ref.split or "train")))
    tests = []
    for group, refs in (suite.test_groups() if include_tests else {}).items():
        for ref in refs:
            dataset, index = opened[fingerprint(ref.model_dump())]
            split = ref.split or dataset.default_test_split
            spec = ref.preprocessing or suite.preprocessing
            tests.append(TestSet(
                group=group, slug=slug(f"{ref.label or ref.dataset}-{split}"), label=ref.label or dataset.title,
                ref=ref, dataset=dataset, index=index, split=split, records=index.split(split),
                resize=Resize(shorter_side=spec.shorter_side, max_side=spec.max_side),
                reading=ImageReading(exif_orientation=spec.exif_orientation, max_megapixels=spec.max_megapixels,
                                     downscaled_to=spec.max_side),
            ))
    slugs = [t.slug for t in tests]
    if len(set(slugs)) != len(slugs):
        raise IQABenchError("two test sets have the same dataset and split; give them distinct `label:`s.")
    return training, tests
