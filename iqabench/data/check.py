"""Which datasets are on disk and usable: the table of ``iqabench data check`` and of a suite's pre-flight.

A new user learns here, before a long run starts, which datasets were found,
how many of their images are present against the official count, and which
splits are available.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqabench.contracts.dataset import dataset_root
from iqabench.errors import DatasetNotFoundError, IQABenchError
from iqabench.registry.discovery import PluginRegistry, default_registry

#: the columns of :func:`check_datasets`' rows, in table order
CHECK_COLUMNS = ("dataset", "title", "found", "images", "records", "official", "splits", "split_source", "root",
                 "problem")


def check_datasets(
    data_root: str | Path | None, names: Sequence[str] | None = None, registry: PluginRegistry | None = None
) -> list[dict[str, Any]]:
    """One row per dataset saying whether it can be used, for ``data check`` and for a suite's pre-flight.

    Columns (see :data:`CHECK_COLUMNS`):
    ``dataset`` registry name; ``title`` table name; ``found`` True when the
    labels were read; ``images`` image files found on disk; ``records``
    records in the index (images expected); ``official`` the official count;
    ``splits`` "name count" pairs; ``split_source`` where the splits came from;
    ``root`` the dataset folder looked at; ``problem`` the error, or the
    missing-image count and the provenance's warnings joined by "; ", empty
    when the dataset is complete and nothing needs saying.
    """
    registry = registry or default_registry()
    if names is not None:
        for name in names:
            registry.get("dataset", name)  # an unknown name raises with the close matches
    data_root = Path(data_root) if data_root is not None else None
    rows = []
    for entry in registry.entries("dataset"):
        if names is not None and entry.name not in names:
            continue
        cls = entry.cls
        root = dataset_root(cls, data_root)
        row: dict[str, Any] = dict.fromkeys(CHECK_COLUMNS, "")
        row.update(dataset=entry.name, title=cls.title, found=False, root=str(root or ""))
        row["official"] = cls.official_count or ""
        try:
            dataset = cls(root=root)
            try:
                dataset.root  # noqa: B018  (it needs a data root; a dataset that makes its own images has a default)
            except DatasetNotFoundError:
                row["problem"] = "no data root: pass --root or set IQABENCH_DATA"
                rows.append(row)
                continue
            if not dataset.is_generated():  # a check never generates
                row.update(root=str(dataset.root), problem="not generated yet (generated on first use)")
                rows.append(row)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                index = dataset.load()
        except (IQABenchError, OSError, ValueError) as exc:
            row["problem"] = str(exc).splitlines()[0]
            rows.append(row)
            continue
        missing = len(dataset.missing_images(index))
        provenance = index.provenance
        problems = ([f"{missing} image files missing"] if missing else []) + list(provenance.warnings)
        row.update(
            found=True,
            images=provenance.count - missing,
            records=provenance.count,
            official=provenance.official_count or "",
            splits=", ".join(f"{name} {count}" for name, count in sorted(provenance.splits.items())),
            split_source=provenance.split_source,
            root=str(dataset.root),
            problem="; ".join(problems),
        )
        rows.append(row)
    return rows


def format_check_table(rows: list[dict[str, Any]]) -> str:
    """The ``data check`` table for rows from :func:`check_datasets`."""
    from tabulate import tabulate

    table = [
        [
            r["dataset"], r["title"], "yes" if r["found"] else "no",
            f"{r['images']} / {r['records']}" if r["found"] else "", r["official"], r["splits"], r["split_source"],
            r["problem"],
        ]
        for r in rows
    ]
    headers = ["dataset", "title", "found", "images found / expected", "official", "splits", "split source", "problem"]
    return tabulate(table, headers=headers)
