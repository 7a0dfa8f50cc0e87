"""The schema of ``results.json``: every field a run writes and a leaderboard, a figure or a merge reads.

``results.json`` is the one record of a run that everything downstream is drawn from (the markdown, the
figures, the web page, a merge of partial runs), so its shape is declared here once, with types, instead of in
string-key lookups spread over its readers. :func:`read_results` turns a file (or a dict) into
:class:`Results` with a message that names the field when something is wrong; :meth:`Results.to_json` gives
the dict that is written. Sections the run owns refuse unknown fields (a typo in a writer fails at once);
records produced by other parts of iqabench or by plugins (a dataset's provenance, the efficiency measurement,
a model's configuration, a prediction file's meta) keep their extra keys.

A file written before a section existed still reads: every section added since defaults to "not recorded"
(``None`` or empty), and the readers say so where it matters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iqabench.errors import IQABenchError
from iqabench.run.suite import SignificanceSpec

MetricName = Literal["plcc", "srcc"]


class ResultsError(IQABenchError):
    """A ``results.json`` that cannot be read: not JSON, or a field of the wrong kind."""


class _Record(BaseModel):
    """A section iqabench's own results code writes: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A record another part of iqabench or a plugin produces: the fields read here are typed, others kept."""

    model_config = ConfigDict(extra="allow")


# ----------------------------------------------------------------------------------------------- the run


class SuiteRecord(_Record):
    """The suite settings the numbers depend on."""

    name: str
    description: str = ""
    notes: str = ""
    protocol: str = "single_domain"
    file: str = ""
    sha256: str = ""
    correlation: Literal["none", "logistic4"] = "none"
    bootstrap: int = 0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 1
    data_root: str | None = None
    #: how models are compared (:mod:`iqabench.reports.significance`); None in files written before it existed
    significance: SignificanceSpec | None = None


class RunProvenance(_Record):
    command: str = ""
    created: str = ""
    git_commit: str | None = None
    python: str = ""
    platform: str = ""
    cuda: str | None = None
    versions: dict[str, str | None] = Field(default_factory=dict)


class ProcessRecord(_Record):
    index: int
    host: str
    device: str


class LaunchRecord(_Record):
    """How many processes, machines and devices scored a run."""

    processes: int
    hosts: int
    devices: int
    per_process: list[ProcessRecord] = Field(default_factory=list)


class SelectionRecord(_Record):
    """The pairs a partial run holds (``--models``, ``--tests``, ``--pairs``)."""

    models: list[str] | None = None
    tests: list[str] | None = None
    pairs: str | None = None
    held: list[tuple[str, str]] = Field(default_factory=list)
    suite_pairs: int = 0


class MergedSource(_Record):
    """One output folder a merged result was joined from."""

    folder: str
    held: list[tuple[str, str]] = Field(default_factory=list)
    launch: LaunchRecord | None = None
    command: str = ""
    created: str = ""
    selection: SelectionRecord | None = None


# ----------------------------------------------------------------------------------------------- columns and rows


class DatasetProvenanceRecord(_Open):
    """A dataset's :class:`~iqabench.contracts.dataset.Provenance` as the run recorded it."""

    dataset: str = ""
    root: str | None = None
    warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class TestSetContent(_Record):
    """What a test set's data held when a run read it (:meth:`iqabench.run.plan.TestSet.content`): parts of one
    suite merge only if these agree."""

    __test__ = False

    #: digest of the image names, in order, with their MOS
    labels: str
    #: digest of the image files, by ``images_by``
    images: str
    #: "size and modification time", or "sha256" (``--hash-images``)
    images_by: str


class TestSetRecord(_Record):
    """One column of the leaderboard."""

    __test__ = False  # not a pytest test class, whatever its name

    key: str
    position: int = 0
    label: str
    group: str = "test"
    dataset: str
    split: str = "test"
    count: int = 0
    #: None in results written before issue 23
    content: TestSetContent | None = None
    dataset_provenance: DatasetProvenanceRecord | None = None


class EfficiencyRecord(_Open):
    """A model's latency and memory measured in the run (:mod:`iqabench.run.efficiency`)."""

    parameters: int | None = None
    batch_size: int | None = None
    ms_per_image: float | None = None
    images_per_second: float | None = None
    peak_memory_mib: float | None = None
    baseline_memory_mib: float | None = None
    memory_method: str = ""
    device_name: str = ""
    dtype: str = ""
    input_resolution: str = ""


class WeightsRecord(_Record):
    """Where a row's weights come from: ``trained here``, ``released checkpoint`` (``note``: which, and why it is
    not retrained) or ``not trained`` (handcrafted, zero-shot)."""

    kind: Literal["trained here", "released checkpoint", "not trained"]
    note: str | None = None


class InputRecord(_Record):
    """How a model got a test set's images: the dataset options and resize in force, and their source."""

    dataset_options: dict[str, Any] = Field(default_factory=dict)
    resize: dict[str, int | None] = Field(default_factory=dict)
    source: str | None = None


class ModelRecord(_Record):
    """One row of the leaderboard: a suite entry and what became of it."""

    key: str
    position: int = 0
    label: str
    name: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None
    plugin: dict[str, Any] | None = None
    reference: str | None = None
    lower_better: bool = False
    score_range: tuple[float, float] | None = None
    preprocessing: str | None = None
    training: dict[str, Any] | None = None
    #: not recorded before the weights column existed
    weights: WeightsRecord | None = None
    efficiency: EfficiencyRecord | None = None


class MetricRecord(_Record):
    """A metric's value (NaN when it could not be computed), its 95% bootstrap interval, and why it is flagged."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    flag: str | None = None

    @property
    def usable(self) -> float | None:
        """The value as a leaderboard shows and ranks it: None when flagged, missing or not finite."""
        if self.flag or self.value is None or not math.isfinite(self.value):
            return None
        return float(self.value)


class GroupResult(_Record):
    """SRCC and PLCC of one model on the images of one distortion type of a test set."""

    #: the distortion type as the dataset names it
    name: str
    #: images of this type in the test set, and how many of them the model scored
    count: int
    scored: int
    srcc: MetricRecord
    plcc: MetricRecord


class PairResult(_Record):
    """One (model, test set) cell: its metrics from the prediction file, or why there are none."""

    model: str
    test_set: str
    status: Literal["ok", "failed", "missing"]
    error: str | None = None
    traceback: str | None = None
    count: int = 0
    scored: int = 0
    unscored: int = 0
    #: -1 when the model is lower-is-better: predictions are negated before correlating
    sign: float = 1.0
    metrics: dict[str, MetricRecord] = Field(default_factory=dict)
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    #: the prediction file's meta (fingerprint, checksums, timing): written by :mod:`iqabench.run.predictions`
    meta: dict[str, Any] | None = None
    #: per distortion type, where the test set records them (:mod:`iqabench.reports.groups`); empty otherwise
    groups: list[GroupResult] = Field(default_factory=list)
    #: how the model got this test set's images (the suite's ``inputs``); not recorded in older files
    input: InputRecord | None = None

    def metric(self, name: MetricName) -> float | None:
        """PLCC or SRCC as the leaderboard shows it: None when the pair failed or the metric is flagged."""
        if self.status != "ok" or name not in self.metrics:
            return None
        return self.metrics[name].usable

    @property
    def flags(self) -> set[str]:
        if self.status != "ok":
            return set()
        return {self.metrics[m].flag for m in ("plcc", "srcc") if m in self.metrics} - {None}


class ReferenceRow(_Open):
    """A reported number from a reference CSV (leaderboards/reference/): never measured here."""

    model: str
    dataset: str
    plcc: float | None = None
    srcc: float | None = None
    table: str | None = None
    source: str | None = None
    #: the parameter count the paper states, when the CSV has the column
    parameters: float | None = None

    @field_validator("plcc", "srcc", "parameters", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value


class ReferenceRecord(_Record):
    file: str
    rows: list[ReferenceRow] = Field(default_factory=list)


# ----------------------------------------------------------------------------------------------- significance


class Difference(_Record):
    """Model A minus model B on one metric, over the images both scored, with the p-values of each test."""

    a: float | None = None
    b: float | None = None
    difference: float | None = None
    #: percentile 95% interval of the difference over paired bootstrap resamples
    low: float | None = None
    high: float | None = None
    #: two-sided p-value of the paired bootstrap
    p_bootstrap: float | None = None
    #: PLCC only: Williams' t for dependent correlations sharing the MOS, and its two-sided p-value (df n - 3)
    williams_t: float | None = None
    p_williams: float | None = None
    #: PLCC only: ratio of the residual variances after the fitted logistic (A over B) and its two-sided p-value
    f_ratio: float | None = None
    p_f_test: float | None = None
    #: why a test could not be made (too few images, a failed fit)
    flag: str | None = None

    def p(self, test: str) -> float | None:
        return {"bootstrap": self.p_bootstrap, "williams": self.p_williams, "f_test": self.p_f_test}[test]


class PairwiseComparison(_Record):
    """Two models compared on the images of one test set that both scored."""

    a: str
    b: str
    images: int
    srcc: Difference
    plcc: Difference


class VersusBest(_Record):
    """A model against the best on one metric: raw and corrected p-values, and whether it is tied with the best."""

    model: str
    p: float | None = None
    p_adjusted: float | None = None
    #: not significantly different from the best at the stated level (after the correction)
    tied: bool = False


class MetricRanking(_Record):
    """Which model is best on one metric of a test set and which others cannot be told apart from it."""

    test: Literal["bootstrap", "williams", "f_test"]
    best: str | None = None
    others: list[VersusBest] = Field(default_factory=list)

    def tied_with_best(self) -> set[str]:
        """The best and every model not significantly different from it."""
        return ({self.best} if self.best else set()) | {o.model for o in self.others if o.tied}


class TestSetSignificance(_Record):
    """The comparisons of the models on one test set."""

    __test__ = False  # not a pytest test class, whatever its name
    test_set: str
    srcc: MetricRanking
    plcc: MetricRanking
    pairs: list[PairwiseComparison] = Field(default_factory=list)


class SignificanceRecord(_Record):
    """The comparisons of every test set; the level, correction and PLCC test are the suite's ``significance``."""

    #: paired bootstrap resamples (the suite's ``bootstrap``) and their seed
    resamples: int
    seed: int
    test_sets: list[TestSetSignificance] = Field(default_factory=list)

    def for_test(self, key: str) -> TestSetSignificance | None:
        return next((t for t in self.test_sets if t.test_set == key), None)


# ----------------------------------------------------------------------------------------------- the file


class Results(_Record):
    """Everything ``results.json`` holds."""

    suite: SuiteRecord
    provenance: RunProvenance = Field(default_factory=RunProvenance)
    launch: LaunchRecord | None = None
    selection: SelectionRecord | None = None
    merged_from: list[MergedSource] | None = None
    test_sets: list[TestSetRecord] = Field(default_factory=list)
    models: list[ModelRecord] = Field(default_factory=list)
    results: list[PairResult] = Field(default_factory=list)
    #: p-values between models on each test set; None in files written before it existed
    significance: SignificanceRecord | None = None
    reference: ReferenceRecord | None = None
    seconds: float | None = None

    def pair(self, model: str, test_set: str) -> PairResult | None:
        return next((p for p in self.results if p.model == model and p.test_set == test_set), None)

    def model(self, key: str) -> ModelRecord:
        return next(m for m in self.models if m.key == key)

    def test_set(self, key: str) -> TestSetRecord:
        return next(t for t in self.test_sets if t.key == key)

    def to_json(self) -> dict[str, Any]:
        """The dict written to ``results.json`` (fields never set by a writer are left out only where None)."""
        data = self.model_dump(mode="json", exclude_none=False)
        if self.merged_from is None:
            data.pop("merged_from")
        return data


def read_results(source: str | Path | Mapping[str, Any] | Results) -> Results:
    """:class:`Results` from a ``results.json`` path, its parsed dict, or a :class:`Results` (returned as is)."""
    if isinstance(source, Results):
        return source
    where = "results"
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            source = json.loads(Path(source).read_text())
        except OSError as exc:
            raise ResultsError(f"{where} cannot be read ({exc}); pass the --out folder of an `iqabench run`.") from None
        except ValueError as exc:
            raise ResultsError(f"{where} is not valid JSON ({exc}); re-run the suite with the same --out to rewrite "
                               "it (finished predictions are reused).") from None
    try:
        return Results.model_validate(source)
    except ValidationError as exc:
        problems = "; ".join(f"`{'.'.join(str(p) for p in e['loc']) or '(top level)'}`: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ResultsError(f"{where} does not have the layout iqabench writes ({problems}). It may come from another "
                           "version of iqabench: re-run the suite with the same --out to rewrite it (finished "
                           "predictions are reused).") from None
