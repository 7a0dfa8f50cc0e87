"""Where each dataset can be downloaded from: one row per dataset, facts only.

A row names the files on the Hugging Face Hub that make up a dataset, with
what their publishers state about them (sizes, sha256 of LFS files) and where
that statement was read, the official image count and the terms of use.
Adding a dataset is adding a row; :mod:`iqabench.data.download` reads nothing
else.

Two sources, chosen with ``--source``:

- ``deqa-score`` (default): the DeQA-Score meta files that DeQA-Score,
  Q-Insight and RALI evaluate on (HF dataset ``zhiyuanyou/Data-DeQA-Score``,
  ``<KEY>/metas/``), with the images from pyiqa's archive. Data-DeQA-Score
  holds meta files only: the DeQA-Score README says to download the metas from
  it and the source images from each dataset's site, and Q-Insight issue #1
  found no ``images`` folder in it.
- ``pyiqa``: pyiqa's archive alone (HF dataset ``chaofengc/IQA-PyTorch-Datasets``),
  read with the official label files if the archive carries them.

Facts and their sources (read for issue 26):

- pyiqa's repository id: ``chaofengc/IQA-PyTorch-Datasets`` in pyiqa's
  download code (chaofengc/IQA-PyTorch@01ae427, ``pyiqa/data/dataset_api.py``);
  the Hub pages read as ``IQA-Toolbox-Datasets`` in 2024 and as
  ``IQA-PyTorch-Datasets`` in the later snapshots, also when reached through
  the ``IQA-Toolbox-Datasets`` address, which the Hub redirects.
- Archive names per dataset: ``dataset_download_name`` in the same file;
  ``AGIQA-3K.zip`` is in the repository (HF commit e874459) but not in pyiqa's code.
- Sizes and sha256: the LFS pointers shown on the Hub's commit pages (commits
  named in each row). The Hub also sends the sha256 of an LFS file with every
  download; iqabench checks the file against both.
- The top folder each archive unpacks to: pyiqa's ``default_dataset_configs.yml``
  (``dataroot_target``); whether an archive also carries the official label
  files is not published: ``iqabench data download`` checks it after unpacking.
- DeQA-Score folders and meta names: DeQA-Score@8e4abc8 ``scripts/infer.sh``
  (the eight test metas) and ``scripts/train.sh`` (three train metas). Other
  files in ``metas/`` are listed from the Hub at download time, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from iqabench.errors import UnknownNameError, did_you_mean

#: pyiqa's dataset archive (PolyForm-Noncommercial code; the archive repository's card says cc-by-sa-4.0)
PYIQA_REPO = "chaofengc/IQA-PyTorch-Datasets"
#: the DeQA-Score meta files
DEQA_REPO = "zhiyuanyou/Data-DeQA-Score"

SOURCES = ("deqa-score", "pyiqa")
DEFAULT_SOURCE = "deqa-score"
#: the environment variable that accepts the terms of every dataset downloaded (``1``, ``true`` or ``yes``)
ACCEPT_ENV = "IQABENCH_ACCEPT_TERMS"

PYIQA_TERMS = (
    "Images come from pyiqa's mirror (HF chaofengc/IQA-PyTorch-Datasets, card licence cc-by-sa-4.0), whose README "
    "says the datasets are collected for academic, research and educational purposes only and that users must follow "
    "the licences and conditions of each dataset's creators."
)
DEQA_TERMS = (
    "The DeQA-Score meta files (HF zhiyuanyou/Data-DeQA-Score) carry the licence field apache-2.0 on their dataset "
    "card as copied by a duplicate of it; iqabench has not read the original card."
)


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


@dataclass(frozen=True)
class HubMetas:
    """A folder of DeQA-Score meta files; every ``<split>_<key>_*.json`` in it is fetched."""

    repo_id: str
    folder: str
    #: meta files the publisher's own scripts name: their absence means the source changed
    required: tuple[str, ...]
    repo_type: str = "dataset"
    revision: str = "main"
    evidence: str = ""


@dataclass(frozen=True)
class DatasetSource:
    """How to get one registered dataset (``dataset`` is its registry name)."""

    dataset: str
    #: the official number of images (the unpacked archive must hold at least this many image files)
    images: int
    #: the images (and whatever label files the archive carries)
    archive: HubFile
    #: the DeQA-Score metas of this dataset
    metas: HubMetas
    #: the dataset's own terms of use, as far as iqabench could confirm them
    terms: str
    #: the folder the archive keeps the dataset in (pyiqa's ``dataroot_target``); None: its single top folder
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


def _pyiqa(path: str, size: int, sha256: str, commit: str) -> HubFile:
    return HubFile(PYIQA_REPO, path, size=size, sha256=sha256, evidence=f"LFS pointer in HF commit {commit}")


def _deqa(folder: str, *required: str) -> HubMetas:
    return HubMetas(DEQA_REPO, f"{folder}/metas", required=required,
                    evidence="DeQA-Score@8e4abc8 scripts/infer.sh and scripts/train.sh")


NOT_CONFIRMED = "not confirmed by iqabench: read them at"

#: the table: one row per dataset
DATASET_SOURCES: tuple[DatasetSource, ...] = (
    DatasetSource(
        "koniq10k", 10073,
        _pyiqa("koniq10k.tgz", 6_348_641_188, "18f4b664fed41ffdf37dd5cae6921901d86afddd952fdfa3d77eda25cc48370b",
               "6545abd7b3a8556cac11cf9ca5a567cb593e3f60"),
        _deqa("KONIQ", "test_koniq_2k.json", "train_koniq_7k.json"),
        "KonIQ-10k's images are Flickr photos from YFCC100M under Creative Commons licences (KonIQ-10k paper); the "
        f"database's own terms are {NOT_CONFIRMED} http://database.mmsp-kn.de/koniq-10k-database.html",
        archive_folder="koniq10k",
        notes=("pyiqa reads koniq10k/1024x768 and koniq10k/512x384 from this one archive",),
    ),
    DatasetSource(
        "spaq", 11125,
        _pyiqa("spaq.tgz", 34_841_101_349, "54e0cb49dc8359f9293e746d452d8b12ec653056c9b12a4f97798a984c7418f7",
               "38ae5dc5019b596e953a6f80f7fcf6b009625766"),
        _deqa("SPAQ", "test_spaq_2k.json", "train_spaq_9k.json"),
        "SPAQ's repository (h4nwei/SPAQ) states no licence; its terms are "
        f"{NOT_CONFIRMED} https://github.com/h4nwei/SPAQ",
        archive_folder="SPAQ",
        notes=("pyiqa reads SPAQ/TestImage from this archive",),
    ),
    DatasetSource(
        "livew", 1169,
        _pyiqa("live_challenge.tgz", 325_992_044, "cdd7a6227de40df10cfd5daf8d19894e95200fa0ca5655bbe50fd433d3b31f25",
               "e198fc3981f8f4fb2909fb53ce1a9638aef3deaf"),
        _deqa("LIVE-WILD", "test_livew_1k.json"),
        "LIVE In the Wild: the University of Texas copyright notice allows use and redistribution for any purpose if "
        "the notice is kept and the database is cited (notice as quoted by third parties); "
        "https://live.ece.utexas.edu/research/ChallengeDB/index.html",
        archive_folder="LIVEC",
        notes=("pyiqa reads LIVEC/Data/*.mat (its processing script) from this archive",),
    ),
    DatasetSource(
        "kadid10k", 10125,
        _pyiqa("kadid10k.tgz", 3_069_431_805, "841396f9237e68c8e6614d5dc907a8fd83d4f403cce89ee2c14524406405b14a",
               "d378319b35bc59b83dec155c3afbaf4e85bf3149"),
        _deqa("KADID10K", "test_kadid_2k.json", "train_kadid_8k.json"),
        f"KADID-10k's terms are {NOT_CONFIRMED} http://database.mmsp-kn.de/kadid-10k-database.html",
        archive_folder="kadid10k",
        notes=("pyiqa reads kadid10k/images and kadid10k/dmos.csv",),
    ),
    DatasetSource(
        "csiq", 866,
        _pyiqa("csiq.tgz", 379_062_485, "e34c372c98e751c5490dadeb536e37666296b6c4f651df30cc04c0547ffee5b0",
               "3a1693ce3aec04ddf5670eb70fe43a58cc709a1c"),
        _deqa("CSIQ", "test_csiq_866.json"),
        f"CSIQ's terms are {NOT_CONFIRMED} https://s2.smu.edu/~eclarson/csiq.html",
        archive_folder="CSIQ",
        notes=("pyiqa reads CSIQ/dst_imgs, CSIQ/src_imgs and CSIQ/csiq_label.txt",),
    ),
    DatasetSource(
        "tid2013", 3000,
        _pyiqa("tid2013.tgz", 1_227_227_546, "ac92094b1469ec0dff181a553b8c84302606ba99f81e38652532cadac886d735",
               "1cbf2a1fb8e785166b5258babd37bad4949dd8cb"),
        _deqa("TID2013", "test_tid2013_3k.json"),
        f"TID2013's terms are {NOT_CONFIRMED} https://www.ponomarenko.info/tid2013.htm",
        archive_folder="tid2013",
        notes=("pyiqa reads tid2013/distorted_images and tid2013/mos_with_names.txt",),
    ),
    DatasetSource(
        "pipal", 23200,
        _pyiqa("pipal.tar", 5_843_353_600, "6bcb713ba0f9ad9ff6c11fc4c680ec88e633a674d16dc9d0700786d24b40f6b4",
               "58779e3fe35de2f41230d2234d0e7d717b46a729"),
        _deqa("PIPAL", "test_pipal_5k.json"),
        "PIPAL's repository (HaomingCai/PIPAL-dataset) states no licence for the data; its terms are "
        f"{NOT_CONFIRMED} https://github.com/HaomingCai/PIPAL-dataset",
        archive_folder="PIPAL",
        notes=("pyiqa reads PIPAL/Dist_Imgs and PIPAL/Train_Ref; whether Dist_Imgs also holds the validation images "
               "is not known",),
    ),
    DatasetSource(
        "agiqa3k", 2982,
        _pyiqa("AGIQA-3K.zip", 97_950_738, "96401d1f9844ef68092c7f6d5681c8ec90b20c33d238fb4d25033133f10084cf",
               "e874459ad97a21e02874115a6090722c1ce19f24"),
        _deqa("AGIQA3K", "test_agiqa_3k.json"),
        "AGIQA-3K's repository (lcysyzxdxc/AGIQA-3k-Database) carries an MIT licence file; whether it covers the "
        "images is not stated there",
        notes=("not in pyiqa's code: the archive's layout is not documented",),
    ),
)


def source_table(rows: Iterable[DatasetSource] | None = None) -> dict[str, DatasetSource]:
    """The rows by dataset name (the built-in table by default)."""
    return {row.dataset: row for row in (DATASET_SOURCES if rows is None else rows)}


def resolve_names(names: Sequence[str], table: dict[str, DatasetSource]) -> list[str]:
    """Dataset names in table order; ``all`` means every row; an unknown name is an error naming the known ones."""
    if not names:
        raise UnknownNameError(f"name the datasets to download, or `all`; known: {', '.join(table)}.")
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


def download_command(names: Iterable[str], data_root: object | None = None) -> str:
    """The ``iqabench data download`` line that gets ``names`` (those with a source), or "" when none has one."""
    table = source_table()
    known = [name for name in dict.fromkeys(names) if name in table]
    if not known:
        return ""
    return f"iqabench data download {' '.join(known)} --root {data_root or 'DIR'}"


def _size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def listing(rows: Iterable[DatasetSource] | None = None) -> list[dict[str, object]]:
    """One plain record per dataset for ``data download --list --json`` (no network)."""
    return [
        {
            "dataset": row.dataset,
            "images": row.images,
            "sources": {
                "pyiqa": [f"{row.archive.repo_type}s/{row.archive.repo_id}/{row.archive.path}"],
                "deqa-score": [f"{row.archive.repo_type}s/{row.archive.repo_id}/{row.archive.path}",
                               f"{row.metas.repo_type}s/{row.metas.repo_id}/{row.metas.folder}/"],
            },
            "archive_bytes": row.archive.size,
            "archive_sha256": row.archive.sha256,
            "archive_evidence": row.archive.evidence,
            "metas_required": list(row.metas.required),
            "metas_evidence": row.metas.evidence,
            "terms": row.terms,
            "restricted": row.restricted,
            "notes": list(row.notes),
        }
        for row in source_table(rows).values()
    ]


def format_listing(rows: Iterable[DatasetSource] | None = None) -> str:
    """The ``data download --list`` text: a table of sources and sizes, then each dataset's terms."""
    from tabulate import tabulate

    table = source_table(rows)
    body = [
        [row.dataset, row.images, f"{row.archive.path}", _size(row.archive.size),
         f"{row.metas.folder}/ ({', '.join(n.removesuffix('.json') for n in row.metas.required)}, ...)",
         "restricted" if row.restricted else "open"]
        for row in table.values()
    ]
    headers = ["dataset", "images", f"archive ({PYIQA_REPO})", "size", f"DeQA-Score metas ({DEQA_REPO})", "terms"]
    lines = [
        tabulate(body, headers=headers),
        "",
        "--source deqa-score (default): the archive for the images + the DeQA-Score metas (labels and splits of the "
        "papers). --source pyiqa: the archive alone, read with its own label files.",
        f"Downloading a dataset whose terms are restricted needs --accept-terms (or {ACCEPT_ENV}=1).",
        "",
        "Terms of use:",
        f"  - all: {PYIQA_TERMS}",
        f"  - DeQA-Score metas: {DEQA_TERMS}",
    ]
    lines += [f"  - {row.dataset}: {row.terms}" for row in table.values()]
    return "\n".join(lines)
