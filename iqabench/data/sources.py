"""What a dataset plugin declares so that ``iqabench data download`` can fetch it.

A dataset class sets ``download = DatasetSource(...)``: the files on the
Hugging Face Hub that make up the dataset, with what their publishers state
about them (sizes, sha256 of LFS files) and where that statement was read, the
official image count and the terms of use. The built-in eight are one table,
``iqabench_plugins/datasets/downloads.py``; a third-party dataset plugin makes
its dataset downloadable the same way. :mod:`iqabench.data.download` reads
nothing else.

Two sources, chosen with ``--source``:

- ``deqa-score`` (default): the archive for the images plus the DeQA-Score
  meta files, the labels and splits DeQA-Score, Q-Insight and RALI evaluate on;
- ``pyiqa``: the archive alone, read with whatever label files it carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iqabench.errors import UnknownNameError, did_you_mean

if TYPE_CHECKING:
    from iqabench.registry.discovery import PluginRegistry

SOURCES = ("deqa-score", "pyiqa")
DEFAULT_SOURCE = "deqa-score"
#: the environment variable that accepts the terms of every dataset downloaded (``1``, ``true`` or ``yes``)
ACCEPT_ENV = "IQABENCH_ACCEPT_TERMS"


@dataclass(frozen=True)
class HubFile:
    """One file of a Hugging Face repository, with what its publisher states about it."""

    repo_id: str
    path: str
    repo_type: str = "dataset"
    revision: str = "main"
    #: bytes, as published; None when not known
    size: int | None = None
    #: the sha256 the publisher gives (an LFS pointer's oid); None when not published
    sha256: str | None = None
    #: where ``size`` and ``sha256`` were read
    evidence: str = ""
    #: the terms of use of the repository the file comes from
    terms: str = ""


@dataclass(frozen=True)
class HubMetas:
    """A folder of DeQA-Score meta files; every ``<split>_*.json`` in it is fetched."""

    repo_id: str
    folder: str
    #: meta files the publisher's own scripts name: their absence means the source changed
    required: tuple[str, ...]
    repo_type: str = "dataset"
    revision: str = "main"
    evidence: str = ""
    terms: str = ""


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset is downloaded from (a dataset class's ``download``)."""

    #: the official number of images (the unpacked archive must hold at least this many image files)
    images: int
    #: the images (and whatever label files the archive carries)
    archive: HubFile
    #: the DeQA-Score metas of this dataset
    metas: HubMetas
    #: the dataset's own terms of use, as far as they could be confirmed
    terms: str
    #: the folder the archive keeps the dataset in; None: its single top folder
    archive_folder: str | None = None
    #: whether the terms restrict use, so that a first download needs ``--accept-terms``
    restricted: bool = True
    #: facts about the layout, and what is not known about it
    notes: tuple[str, ...] = field(default_factory=tuple)

    def files(self, source: str) -> list[HubFile | HubMetas]:
        """What ``source`` downloads for this dataset."""
        if source == "pyiqa":
            return [self.archive]
        if source == "deqa-score":
            return [self.archive, self.metas]
        raise UnknownNameError(
            f"unknown source {source!r}; one of {', '.join(SOURCES)}.{did_you_mean(source, SOURCES)}"
        )


def downloadable(registry: PluginRegistry | None = None) -> dict[str, DatasetSource]:
    """Every registered dataset that declares a ``download``, by name, in registry order."""
    from iqabench.registry.discovery import default_registry

    registry = registry or default_registry()
    return {
        entry.name: entry.cls.download for entry in registry.entries("dataset")
        if isinstance(getattr(entry.cls, "download", None), DatasetSource)
    }


def resolve_names(names: Sequence[str], table: dict[str, DatasetSource]) -> list[str]:
    """Dataset names in table order; ``all`` means every row; an unknown name is an error naming the known ones."""
    if not names:
        raise UnknownNameError(f"name the datasets to download, or `all`; downloadable: {', '.join(table)}.")
    wanted: list[str] = []
    for name in names:
        if name == "all":
            wanted.extend(table)
        elif name in table:
            wanted.append(name)
        else:
            raise UnknownNameError(
                f"no download source for dataset {name!r}.{did_you_mean(name, [*table, 'all'])} Downloadable: "
                f"{', '.join(table)} (or `all`); `iqabench data download --list` shows their sources."
            )
    return [name for name in table if name in wanted]


def download_command(names: Iterable[str], data_root: object | None, registry: PluginRegistry | None = None) -> str:
    """The ``iqabench data download`` line that gets ``names`` (those with a source), or "" when none has one."""
    table = downloadable(registry)
    known = [name for name in dict.fromkeys(names) if name in table]
    if not known:
        return ""
    return f"iqabench data download {' '.join(known)} --root {data_root or 'DIR'}"


def _size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def listing(table: dict[str, DatasetSource]) -> list[dict[str, object]]:
    """One plain record per dataset for ``data download --list --json`` (no network)."""
    return [
        {
            "dataset": name,
            "images": row.images,
            "sources": {
                source: [f"{item.repo_type}s/{item.repo_id}/"
                         + (item.path if isinstance(item, HubFile) else item.folder + "/")
                         for item in row.files(source)]
                for source in SOURCES
            },
            "archive_bytes": row.archive.size,
            "archive_sha256": row.archive.sha256,
            "archive_evidence": row.archive.evidence,
            "metas_required": list(row.metas.required),
            "metas_evidence": row.metas.evidence,
            "terms": [term for term in (row.archive.terms, row.metas.terms, row.terms) if term],
            "restricted": row.restricted,
            "notes": list(row.notes),
        }
        for name, row in table.items()
    ]


def format_listing(table: dict[str, DatasetSource]) -> str:
    """The ``data download --list`` text: a table of sources and sizes, then each dataset's terms."""
    from tabulate import tabulate

    body = [
        [name, row.images, row.archive.path, _size(row.archive.size),
         f"{row.metas.folder}/ ({', '.join(n.removesuffix('.json') for n in row.metas.required)}, ...)",
         "restricted" if row.restricted else "open"]
        for name, row in table.items()
    ]
    archives = sorted({row.archive.repo_id for row in table.values()})
    metas = sorted({row.metas.repo_id for row in table.values()})
    lines = [
        tabulate(body, headers=["dataset", "images", "archive", "size", "DeQA-Score metas", "terms"]),
        "",
        f"Archives from the Hugging Face dataset(s) {', '.join(archives)}; metas from {', '.join(metas)}.",
        "--source deqa-score (default): the archive for the images + the metas (the labels and splits of the papers). "
        "--source pyiqa: the archive alone, read with its own label files.",
        f"Downloading a dataset whose terms are restricted needs --accept-terms (or {ACCEPT_ENV}=1).",
        "",
        "Terms of use:",
    ]
    shared = list(dict.fromkeys(t for row in table.values() for t in (row.archive.terms, row.metas.terms) if t))
    lines += [f"  - all: {term}" for term in shared]
    lines += [f"  - {name}: {row.terms}" for name, row in table.items()]
    return "\n".join(lines)
