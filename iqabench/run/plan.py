"""Setting up a suite run: everything checked and opened before any work starts.

:func:`plan_run` turns a suite file into a :class:`RunPlan`: every model,
trainer and dataset name looked up, every option checked against its
constructor (names and types), the reference file found, the output labels
checked for clashes and every dataset's label files read (a missing dataset
stops here with the ``data check`` table). :func:`iqabench.run.runner.evaluate`
then runs the loop. The split follows lm-evaluation-harness, where
``simple_evaluate`` sets up and ``evaluate`` loops.

A run may hold only part of its suite's (model, test set) pairs: some models
(``--models``), some test sets (``--tests``), or part ``i`` of ``n`` of the
pairs (``--pairs i/n``, one job of a cluster array). Its results say which
pairs it holds (:class:`Selection`), and ``iqabench leaderboard --merge``
joins the folders of such runs into the leaderboard of the whole suite.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqabench.content import images_digest
from iqabench.contracts.dataset import Dataset, DatasetIndex, Record, resolve_data_root
from iqabench.contracts.trainer import TrainingSet
from iqabench.data.check import check_datasets, format_check_table
from iqabench.data.sources import download_command
from iqabench.errors import DatasetNotFoundError, IQABenchError, SuiteError
from iqabench.provenance import fingerprint
from iqabench.registry.discovery import Entry, PluginRegistry, default_registry
from iqabench.registry.factory import (
    check_dataset_options,
    check_dtype,
    check_model_options,
    check_trainer_options,
    create_dataset,
    resolve_device,
    trainer_for,
)
from iqabench.reports.results import read_reference
from iqabench.run.distributed import process_device, share
from iqabench.run.layout import RunLayout, slug
from iqabench.run.suite import DatasetRef, ModelEntry, Suite, load_suite
from iqabench.scoring.images import ImageReading
from iqabench.scoring.loader import Resize

log = logging.getLogger("iqabench.run.plan")


class DataMissingError(IQABenchError):
    """Datasets a suite needs are not on disk; the message carries the `data check` table."""


@dataclass
class TestSet:
    """One column of the leaderboard: a split of a dataset, with its records."""

    #: its place among the suite's test sets (its column), also when a run holds only some of them
    position: int
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
    #: how the images reach the model: the dataset options and resize in force and their source
    input: dict[str, Any] = field(default_factory=dict)
    #: fingerprint the images by their bytes (every byte read) instead of their size and modification time
    hash_images: bool = False

    def paths(self) -> list[Path]:
        return [self.dataset.image_path(record) for record in self.records]

    @functools.cached_property
    def labels_digest(self) -> str:
        """Which images, in which order, with which labels."""
        return fingerprint([(r.image, r.mos) for r in self.records])

    @functools.cached_property
    def images_digest(self) -> str:
        """What the image files hold (:func:`iqabench.content.images_digest`), taken once per run."""
        return images_digest(self.paths(), [r.image for r in self.records], content=self.hash_images)

    def content(self) -> dict[str, str]:
        """The data's fingerprint: labels, and image files by size and modification time or by SHA-256."""
        return {"labels": self.labels_digest, "images": self.images_digest,
                "images_by": "sha256" if self.hash_images else "size and modification time"}

    def describe(self) -> dict[str, Any]:
        """What results record about the test set."""
        return {"key": self.slug, "position": self.position, "label": self.label, "group": self.group,
                "dataset": self.ref.dataset,
                "split": self.split, "count": len(self.records), "content": self.content(),
                "dataset_provenance": self.index.provenance.to_dict()}


@dataclass
class PlannedModel:
    """A suite entry resolved: its registered class, checked options and the trainer that trains it."""

    entry: ModelEntry
    #: its place among the suite's models (its row), also when a run holds only some of them
    position: int
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


@dataclass(frozen=True)
class Selection:
    """The (model, test set) pairs of a run that holds only part of its suite, and how they were chosen."""

    models: list[str] | None
    tests: list[str] | None
    #: ``(i, n)``: part i of n of the selected pairs (``--pairs i/n``)
    pairs: tuple[int, int] | None
    #: (model key, test set key) of every pair this run holds, in suite order
    held: list[tuple[str, str]]
    #: how many pairs the whole suite has
    suite_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {"models": self.models, "tests": self.tests,
                "pairs": None if self.pairs is None else f"{self.pairs[0]}/{self.pairs[1]}",
                "held": [list(pair) for pair in self.held], "suite_pairs": self.suite_pairs}


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
    #: the reference file's rows, read (and checked) before any work
    reference_rows: list[dict[str, Any]] | None
    registry: PluginRegistry
    force: bool = False
    progress: bool = True
    #: None when the run holds every pair of its suite
    selection: Selection | None = None
    #: the training sets of models whose ``inputs`` change them, by model slug
    model_training: dict[str, list[TrainingSet]] = field(default_factory=dict)
    #: the test sets of models whose ``inputs`` change them, by (model slug, test set slug)
    model_tests: dict[tuple[str, str], TestSet] = field(default_factory=dict)

    def holds(self, model: PlannedModel, test: TestSet) -> bool:
        """Whether this run scores ``model`` on ``test``."""
        return self.selection is None or (model.slug, test.slug) in self.selection.held

    def training_for(self, model: PlannedModel) -> list[TrainingSet]:
        """The training sets as ``model`` gets them (its suite ``inputs`` applied)."""
        return self.model_training.get(model.slug, self.training)

    def test_for(self, model: PlannedModel, test: TestSet) -> TestSet:
        """The test set (column) ``test`` as ``model`` gets it: same records and column, its own images and resize."""
        return self.model_tests.get((model.slug, test.slug), test)


def suite_relative(suite_file: Path, value: str | None) -> str | None:
    """A path written in a suite: ``~`` and ``$VARIABLES`` expanded, then relative to the suite's folder."""
    if value is None:
        return value
    value = os.path.expandvars(os.path.expanduser(value))
    if os.path.isabs(value):
        return value
    return str((suite_file.parent / value).resolve())


def plan_run(
    suite_file: str | Path,
    out: str | Path | None = None,
    *,
    data_root: str | None = None,
    force: bool = False,
    only_models: list[str] | None = None,
    only_tests: list[str] | None = None,
    pairs: tuple[int, int] | None = None,
    device: str | None = None,
    registry: PluginRegistry | None = None,
    progress: bool = True,
    include_tests: bool = True,
    hash_images: bool = False,
) -> RunPlan:
    """Read, check and open everything a run of ``suite_file`` into ``out`` (default ``runs/<suite name>``) needs.

    ``only_models`` (names or labels), ``only_tests`` (labels, keys or dataset names) and ``pairs`` (part i of
    n of the remaining (model, test set) pairs) restrict the run to part of the suite. ``hash_images`` (or the
    suite's ``hash_images``) fingerprints the test images by their bytes rather than their size and time.
    """
    suite_file = Path(suite_file)
    suite, digest = load_suite(suite_file)
    registry = registry or default_registry()
    labels = [entry.display for entry in suite.models]
    slugs = [slug(label) for label in labels]
    clashes = sorted({s for s in slugs if slugs.count(s) > 1})
    if clashes:
        raise IQABenchError(
            f"model labels {[label for label in labels if slug(label) in clashes]} share the folder name(s) "
            f"{clashes}; give them labels that differ in letters or digits."
        )
    models = [_plan_model(position, entry, suite, registry) for position, entry in _select_models(suite, only_models)]
    reference = reference_rows = None
    if suite.reference:
        reference = Path(suite_relative(suite_file, suite.reference))
        if not reference.is_file():
            raise SuiteError(f"{suite_file}: field `reference`: {reference} does not exist; fix the path (it is "
                             "relative to the suite file) or remove the field.")
        try:
            reference_rows = read_reference(reference)
        except (IQABenchError, OSError) as exc:
            raise SuiteError(f"{suite_file}: field `reference`: {exc}") from None
    root = resolve_data_root(data_root, suite_relative(suite_file, suite.data_root))
    candidates = _test_candidates(suite, suite_file, root, registry) if include_tests else []
    selected = _select_tests(candidates, only_tests)
    held = [(m.slug, t.slug) for m in models for t in selected]
    if pairs is not None:
        if pairs[1] > len(held):
            raise IQABenchError(f"--pairs {pairs[0]}/{pairs[1]}: the run has only {len(held)} (model, test set) "
                                f"pair(s) to share out; use at most {len(held)} parts.")
        held = share(held, *pairs)
    suite_pairs = len(suite.models) * len(candidates)
    selection = None
    if include_tests and len(held) < suite_pairs:
        selection = Selection(models=only_models, tests=only_tests, pairs=pairs, held=held, suite_pairs=suite_pairs)
        models = [m for m in models if any(m.slug == pair[0] for pair in held)]
        selected = [t for t in selected if any(t.slug == pair[1] for pair in held)]
    training, tests, model_training, model_tests = _open_datasets(suite, suite_file, root, registry, selected, models,
                                                                  hash_images=hash_images or suite.hash_images)
    return RunPlan(
        suite=suite, suite_file=suite_file, suite_sha256=digest,
        layout=RunLayout(Path(out) if out is not None else Path("runs") / suite.name),
        device=process_device(resolve_device(device or suite.device)), data_root=root, models=models,
        training=training, tests=tests, reference_file=reference, reference_rows=reference_rows, registry=registry,
        force=force, progress=progress, selection=selection, model_training=model_training, model_tests=model_tests,
    )


def parse_pairs(text: str) -> tuple[int, int]:
    """``"i/n"`` (part i of n, counted from 0, as a SLURM array's task id and count) as ``(i, n)``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise IQABenchError(f"--pairs {text!r} is not PART/PARTS with 0 <= PART < PARTS, e.g. --pairs 0/4 for the "
                            "first of four jobs (a SLURM array's $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).")
    return index, count


def _select_models(suite: Suite, only: list[str] | None) -> list[tuple[int, ModelEntry]]:
    """The suite's model entries that ``--models`` names (all without it), with their places in the suite."""
    entries = list(enumerate(suite.models))
    if not only:
        return entries
    unknown = [name for name in only if not any(name in (m.name, m.display) for m in suite.models)]
    if unknown:
        available = ", ".join(m.display for m in suite.models)
        raise IQABenchError(f"--models names {unknown} that are not in the suite; its models: {available}.")
    return [(position, m) for position, m in entries if m.name in only or m.display in only]


def _plan_model(position: int, entry: ModelEntry, suite: Suite, registry: PluginRegistry) -> PlannedModel:
    registered = registry.get("model", entry.name)
    planned = PlannedModel(
        entry=entry,
        position=position,
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


@dataclass
class _Candidate:
    """A test set of the suite before its labels are read: enough to name it and to select it."""

    position: int
    group: str
    ref: DatasetRef
    dataset: Dataset
    split: str
    label: str
    slug: str


def _test_candidates(suite: Suite, suite_file: Path, data_root: Path | None,
                     registry: PluginRegistry) -> list[_Candidate]:
    """Every test set of the suite, named (label, key, split) without reading any label file."""
    candidates = []
    instances: dict[str, Dataset] = {}
    for group, refs in suite.test_groups().items():
        for ref in refs:
            check_dataset_options(ref.dataset, ref.options, registry)
            key = fingerprint(ref.model_dump())
            if key not in instances:
                instances[key] = create_dataset(ref.dataset, root=suite_relative(suite_file, ref.root),
                                                data_root=data_root, registry=registry, **ref.options)
            dataset = instances[key]
            try:
                split = ref.split or dataset.test_split()
            except DatasetNotFoundError:  # reported with every other missing dataset when the datasets are opened
                split = "test"
            label = ref.label or dataset.title
            candidates.append(_Candidate(len(candidates), group, ref, dataset, split, label,
                                         slug(f"{ref.label or ref.dataset}-{split}")))
    slugs = [c.slug for c in candidates]
    if len(set(slugs)) != len(slugs):
        raise IQABenchError("two test sets have the same dataset and split; give them distinct `label:`s.")
    return candidates


def _select_tests(candidates: list[_Candidate], only: list[str] | None) -> list[_Candidate]:
    """The test sets ``--tests`` names by label, key or dataset name (all without it)."""
    if not only:
        return candidates
    unknown = [name for name in only if not any(name in (c.label, c.slug, c.ref.dataset) for c in candidates)]
    if unknown:
        available = ", ".join(f"{c.label} ({c.slug})" for c in candidates)
        raise IQABenchError(f"--tests names {unknown} that are not in the suite; its test sets: {available}.")
    return [c for c in candidates if any(name in (c.label, c.slug, c.ref.dataset) for name in only)]


def _with_input(ref: DatasetRef, model_input: Any) -> DatasetRef:
    """``ref`` as one model gets it: its ``inputs`` entry's dataset options over the suite's, and its resize."""
    if model_input is None:
        return ref
    update: dict[str, Any] = {"options": {**ref.options, **model_input.options}}
    if model_input.preprocessing is not None:
        update["preprocessing"] = model_input.preprocessing
    return ref.model_copy(update=update)


def _input_record(ref: DatasetRef, spec: Any, model_input: Any) -> dict[str, Any]:
    """What results say about how a model got a dataset's images (``inputs`` in results.json)."""
    return {"dataset_options": dict(ref.options),
            "resize": {"shorter_side": spec.shorter_side, "max_side": spec.max_side},
            "source": model_input.source if model_input is not None else None}


def _open_datasets(
    suite: Suite, suite_file: Path, data_root: Path | None, registry: PluginRegistry, tests: list[_Candidate],
    models: list[PlannedModel], *, hash_images: bool = False,
) -> tuple[list[TrainingSet], list[TestSet], dict[str, list[TrainingSet]], dict[tuple[str, str], TestSet]]:
    """Read the label files of the training sets and of ``tests``, as the suite gives them and as each model's
    ``inputs`` change them; every missing dataset is named at once."""
    train_refs = list(suite.train.datasets) if suite.train else []
    variants = [(m, ref, _with_input(ref, m.entry.inputs.get(ref.dataset))) for m in models
                for ref in train_refs + [t.ref for t in tests] if ref.dataset in m.entry.inputs]
    for ref in train_refs + [v for *_, v in variants]:
        check_dataset_options(ref.dataset, ref.options, registry)
    datasets: dict[str, Dataset] = {}
    for test in tests:
        datasets.setdefault(fingerprint(test.ref.model_dump()), test.dataset)
    for ref in train_refs + [v for *_, v in variants]:
        key = fingerprint(ref.model_dump())
        if key not in datasets:
            datasets[key] = create_dataset(ref.dataset, root=suite_relative(suite_file, ref.root), data_root=data_root,
                                           registry=registry, **ref.options)
    indexes: dict[str, DatasetIndex] = {}
    #: one message per missing dataset, though a suite may use it several times (a train and a test split)
    missing: dict[str, str] = {}
    for key, dataset in datasets.items():
        try:
            indexes[key] = dataset.index()
        except DatasetNotFoundError as exc:
            missing.setdefault(dataset.name, str(exc))
    if missing:
        names = sorted({ref.dataset for ref in train_refs} | {test.ref.dataset for test in tests})
        lines = ["the suite needs datasets that are not on disk.", "",
                 format_check_table(check_datasets(data_root, names, registry)), "", next(iter(missing.values()))]
        if len(missing) > 1:
            lines.append(f"({len(missing) - 1} more dataset(s) missing: {', '.join(list(missing)[1:])}; the table "
                         "above lists them.)")
        command = download_command(names, data_root, registry)
        if command:
            lines += ["", "Download them (sources, sizes and terms: `iqabench data download --list`):", f"  {command}"]
        raise DataMissingError("\n".join(lines))

    def training_set(ref: DatasetRef, model_input: Any = None) -> TrainingSet:
        key = fingerprint(ref.model_dump())
        spec = model_input.preprocessing if model_input is not None and model_input.preprocessing else ref.preprocessing
        resize = Resize(shorter_side=spec.shorter_side, max_side=spec.max_side) if spec is not None else None
        return TrainingSet(name=ref.dataset, root=Path(datasets[key].root),
                           records=indexes[key].split(ref.split or "train"),
                           resize=resize if resize is not None and resize.active else None)

    def test_set(test: _Candidate, ref: DatasetRef, model_input: Any = None) -> TestSet:
        key = fingerprint(ref.model_dump())
        index = indexes[key]
        spec = ref.preprocessing or suite.preprocessing
        return TestSet(
            position=test.position, group=test.group, slug=test.slug, label=test.label, ref=ref,
            dataset=datasets[key], index=index, split=test.split, records=index.split(test.split),
            resize=Resize(shorter_side=spec.shorter_side, max_side=spec.max_side),
            reading=ImageReading(exif_orientation=spec.exif_orientation, max_megapixels=spec.max_megapixels,
                                 jpeg_draft=spec.jpeg_draft,
                                 downscaled_to=spec.max_side),
            input=_input_record(ref, spec, model_input),
            hash_images=hash_images,
        )

    training = [training_set(ref) for ref in train_refs]
    opened = [test_set(test, test.ref) for test in tests]
    model_training: dict[str, list[TrainingSet]] = {}
    model_tests: dict[tuple[str, str], TestSet] = {}
    for model in models:
        inputs = model.entry.inputs
        if not inputs:
            continue
        model_training[model.slug] = [training_set(_with_input(ref, inputs.get(ref.dataset)), inputs.get(ref.dataset))
                                      for ref in train_refs]
        for test in tests:
            if test.ref.dataset in inputs:
                model_tests[(model.slug, test.slug)] = test_set(test, _with_input(test.ref, inputs[test.ref.dataset]),
                                                                inputs[test.ref.dataset])
    for model in models:
        resized = any(t.resize is not None for t in model_training.get(model.slug, training))
        if model.trainer and resized and not registry.trainer(model.trainer).applies_resize:
            raise SuiteError(f"model {model.label!r}: its training images are to be resized (`inputs` or the "
                             f"training set's `preprocessing`), but trainer {model.trainer!r} does not apply a "
                             "resize; give the size through a dataset option instead, or remove the resize.")
    return training, opened, model_training, model_tests
