"""Suites: benchmark protocols as validated data.

A suite YAML says what to train on, what to test on, which models to compare
and how to compute the numbers. It is read with ``yaml.safe_load`` and checked
against the schema below; an error names the file, the field and what was
expected (with a "did you mean" for misspelled fields).

Two protocols, as in the paper:

* ``single_domain`` (Table 2): train on one dataset's train split, test on a list;
* ``cross_domain`` (Table 3): train on several; test sets grouped into
  ``in_domain`` and ``out_of_domain``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from iqabench.errors import SuiteError, did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Preprocessing(_Strict):
    """How images are read, and a resize applied before the model's own preprocessing (none by default)."""

    shorter_side: int | None = Field(default=None, gt=0)
    max_side: int | None = Field(default=None, gt=0)
    #: apply the EXIF orientation tag, as viewers do
    exif_orientation: bool = True
    #: refuse larger images unless max_side downscales them (null: no limit)
    max_megapixels: float | None = Field(default=64.0, gt=0)
    #: decode JPEGs at a reduced scale down to the model's input size: faster, but not bit-exact with a full
    #: decode followed by the model's resize (docs/efficiency.md); off by default
    jpeg_draft: bool = False


class DatasetRef(_Strict):
    """A dataset split. In YAML, a bare name (``koniq10k``) is short for ``{dataset: koniq10k}``."""

    dataset: str
    #: the split; default "train" for training sets and the dataset's own default for test sets
    split: str | None = None
    #: column label in the leaderboard; default the dataset's title
    label: str | None = None
    #: this dataset's folder, overriding ``<data root>/<default dir>``
    root: str | None = None
    #: keyword options of the dataset plugin (e.g. split_source: deqa)
    options: dict[str, Any] = Field(default_factory=dict)
    preprocessing: Preprocessing | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"dataset": value} if isinstance(value, str) else value


class TrainSpec(_Strict):
    datasets: list[DatasetRef] = Field(min_length=1)


class CrossDomainTest(_Strict):
    in_domain: list[DatasetRef] = Field(min_length=1)
    out_of_domain: list[DatasetRef] = Field(default_factory=list)


class ModelInput(_Strict):
    """How one model gets one dataset's images: the dataset plugin's options and a resize, and where that comes
    from (the model's release script, the data its authors used). Applies to the dataset's training and test sets."""

    #: dataset plugin options for this model, over the suite's (e.g. KonIQ ``resolution: 512x384``)
    options: dict[str, Any] = Field(default_factory=dict)
    #: a resize for this model, instead of the suite's
    preprocessing: Preprocessing | None = None
    #: the source of this choice, shown in the leaderboard
    source: str = Field(min_length=1)


class ModelEntry(_Strict):
    """One row of the leaderboard: a registered model with its options."""

    name: str
    #: row label; default the model name. Labels must be unique within a suite.
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: train with the suite's train datasets before scoring
    train: bool = False
    #: trainer name; default the model's own ``trainer``
    trainer: str | None = None
    trainer_options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(default=None, gt=0)
    #: overrides the suite's dtype for this model (e.g. bfloat16 for an MLLM)
    dtype: str | None = None
    #: the model's row name in the reference table, to show measured minus reported
    reference: str | None = None
    #: per dataset name, how this model gets that dataset's images (:class:`ModelInput`)
    inputs: dict[str, ModelInput] = Field(default_factory=dict)
    #: for a row that scores a released checkpoint instead of training it: which, and why it is not retrained
    released: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


class EfficiencySpec(_Strict):
    enabled: bool = True
    warmup: int = Field(default=1, ge=0)
    repeats: int = Field(default=5, ge=1)


class SignificanceSpec(_Strict):
    """How the leaderboard tells models apart on a test set (:mod:`iqabench.reports.significance`).

    Every p-value (paired bootstrap for SRCC and PLCC, Williams' t and the F-test for PLCC) is in
    ``results.json``; these settings choose the level, the correction for comparing every model with the best,
    and which test decides the PLCC marks.
    """

    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["holm", "bonferroni"] = "holm"
    #: ``bootstrap``: paired bootstrap of the PLCC difference; ``williams``: Williams' t for dependent
    #: correlations sharing the MOS; ``f_test``: the VQEG-style F-test on the residuals after the logistic fit
    plcc_test: Literal["bootstrap", "williams", "f_test"] = "bootstrap"


#: fewer bootstrap resamples give a 95% interval made of the few most extreme values (1 gives a point)
MIN_BOOTSTRAP = 100
#: more would take hours on a large test set for no visible change in the interval
MAX_BOOTSTRAP = 100_000
#: what a suite's name may be: it becomes the default output folder ``runs/<name>``, so no "/" and no ".."
SUITE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


class Suite(_Strict):
    #: letters, digits, ".", "_" and "-", starting with a letter or digit: the default output folder is runs/<name>
    name: str = Field(pattern=f"^{SUITE_NAME}$")
    description: str = ""
    protocol: Literal["single_domain", "cross_domain"]
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = Field(default=8, gt=0)
    num_workers: int = Field(default=2, ge=0)
    #: ``none``: PLCC on raw predictions (pyiqa); ``logistic4``: after the VQEG logistic fit (DeQA-Score)
    correlation: Literal["none", "logistic4"] = "none"
    #: bootstrap resamples for 95% intervals and the paired tests between models; 0 disables, else between
    #: MIN_BOOTSTRAP and MAX_BOOTSTRAP
    bootstrap: StrictInt = Field(default=1000, ge=0, le=MAX_BOOTSTRAP)
    significance: SignificanceSpec = Field(default_factory=SignificanceSpec)
    data_root: str | None = None
    #: fingerprint test images by their bytes (every byte read at every launch), not their size and modification
    #: time: for data copied by tools that keep the times of files they change (``iqabench run --hash-images``)
    hash_images: bool = False
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    train: TrainSpec | None = None
    test: list[DatasetRef] | CrossDomainTest
    models: list[ModelEntry] = Field(min_length=1)
    #: CSV of reported numbers, relative to the suite file (see leaderboards/reference/)
    reference: str | None = None
    efficiency: EfficiencySpec = Field(default_factory=EfficiencySpec)
    #: shown at the top of the leaderboard
    notes: str = ""

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, value: int) -> int:
        if 0 < value < MIN_BOOTSTRAP:
            raise ValueError(f"0 (no intervals) or at least {MIN_BOOTSTRAP} resamples: a 95% interval from fewer "
                             "is not worth reporting")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?|mps|auto", value):
            raise ValueError("expected cpu, cuda, cuda:N, mps or auto")
        return value

    @model_validator(mode="after")
    def _protocol(self) -> Suite:
        if self.protocol == "single_domain":
            if not isinstance(self.test, list):
                raise ValueError("single_domain expects `test` to be a list of datasets")
            if self.train and len(self.train.datasets) != 1:
                raise ValueError("single_domain trains on exactly one dataset; use cross_domain for several")
        elif isinstance(self.test, list):
            raise ValueError("cross_domain expects `test` with `in_domain` and `out_of_domain` lists")
        labels = [m.display for m in self.models]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"model labels must be unique; give `label:` to tell apart: {duplicates}")
        if any(m.train for m in self.models) and self.train is None:
            raise ValueError("a model has `train: true` but the suite has no `train:` datasets")
        datasets = {ref.dataset for refs in self.test_groups().values() for ref in refs}
        datasets |= {ref.dataset for ref in (self.train.datasets if self.train else [])}
        for m in self.models:
            if m.train and m.released:
                raise ValueError(f"model {m.display!r} is trained here (`train: true`) and also says `released:`; "
                                 "keep one")
            unknown = sorted(set(m.inputs) - datasets)
            if unknown:
                raise ValueError(f"model {m.display!r}: `inputs` names {unknown}, which the suite neither trains "
                                 f"nor tests on ({sorted(datasets)})")
        return self

    def test_groups(self) -> dict[str, list[DatasetRef]]:
        """Test sets by group: ``{"test": [...]}`` or ``{"in_domain": [...], "out_of_domain": [...]}``."""
        if isinstance(self.test, list):
            return {"test": self.test}
        return {"in_domain": self.test.in_domain, "out_of_domain": self.test.out_of_domain}


def field_names(*schemas: type[BaseModel]) -> list[str]:
    """Every field name of ``schemas`` and the schemas they nest, for "did you mean" hints."""
    names: set[str] = set()
    for schema in schemas:
        names.update(schema.model_fields)
    return sorted(names)


def _format_error(path: Path, error: dict[str, Any], known: list[str], what: str) -> str:
    internal = ("function-", "list[", "CrossDomain")
    location = ".".join(str(part) for part in error["loc"] if not str(part).startswith(internal))
    location = location or "(top level)"
    if error["type"] == "extra_forbidden":
        field = str(error["loc"][-1])
        hint = did_you_mean(field, known, n=1, cutoff=0.6)
        return f"{path}: field `{location}` is not {what} field.{hint}"
    if error["type"] == "missing":
        return f"{path}: field `{location}` is required but missing"
    return f"{path}: field `{location}`: {error['msg']} (got {error.get('input')!r})"


def load_validated(path: str | Path, schema: type[BaseModel], known: list[str], what: str) -> tuple[Any, str]:
    """Read a YAML file with ``yaml.safe_load`` and validate it against ``schema``; return it and its SHA-256.

    Errors name the file, the field and (for a misspelled field) the closest valid name.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{what} file not found: {path}. The bundled ones are in the repository's suites/ folder.")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping of {what} fields")
    try:
        value = schema.model_validate(data)
    except ValidationError as exc:
        # a union (list | CrossDomainTest) reports every branch; keep the distinct messages
        messages = list(dict.fromkeys(_format_error(path, e, known, f"a {what}") for e in exc.errors()))
        raise SuiteError("\n".join(messages[:8])) from None
    return value, hashlib.sha256(raw).hexdigest()


def load_suite(path: str | Path) -> tuple[Suite, str]:
    """Read and validate a suite file; return it with the SHA-256 of its bytes (for provenance)."""
    known = field_names(Suite, ModelEntry, ModelInput, DatasetRef, TrainSpec, CrossDomainTest, EfficiencySpec,
                        Preprocessing)
    return load_validated(path, Suite, known, "suite")
