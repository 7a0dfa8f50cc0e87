"""``iqabench data``: look at a dataset's records, or check which datasets are on disk.

``data show`` prints what a dataset plugin read (raw and rescaled scores,
splits, provenance) so that a researcher can compare it with the label files
line by line; ``data check`` tells a new user which datasets are ready before a
long run starts. :func:`check_datasets` gives the runner the same table.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from iqabench.dataset import DatasetWarning, dataset_root, resolve_data_root
from iqabench.errors import IQABenchError
from iqabench.options import check_options, parse_option_flags
from iqabench.registry import PluginRegistry, default_registry

NAME = "data"
HELP = "show a dataset's records and provenance, or check which datasets are on disk"

#: the columns of :func:`check_datasets`' rows, in table order
CHECK_COLUMNS = ("dataset", "title", "found", "images", "records", "official", "splits", "split_source", "root", "problem")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="print a dataset's records (one JSON object per line with --json)")
    show.add_argument("name", help="dataset name (`iqabench data check` lists them)")
    show.add_argument(
        "--root",
        help="the dataset's OWN folder (e.g. /data/koniq10k); default: <data root>/<dataset folder> "
        "with the data root from $IQABENCH_DATA",
    )
    show.add_argument("--split", help="only this split (train, val, test, all); default: every record")
    show.add_argument("--json", action="store_true", help="JSON lines: provenance first, then one record per line")
    show.add_argument("--provenance", action="store_true", help="print only the provenance")
    show.add_argument("--limit", type=int, default=20, help="rows in the table view (default 20; --json prints all)")
    show.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="a dataset option, e.g. -o split_source=official -o drop_training_images=false",
    )
    check = sub.add_parser("check", help="a table of every registered dataset: found, images found / expected, splits")
    check.add_argument(
        "--root",
        help="the DATA root that holds every dataset's folder (koniq10k/, spaq/, ...); default: $IQABENCH_DATA",
    )
    check.add_argument("names", nargs="*", metavar="NAME", help="only these datasets (default: every registered one)")
    check.add_argument("--json", action="store_true", help="one JSON object per dataset instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "show":
        return _show(args)
    return _check(args)


def _show(args: argparse.Namespace) -> int:
    registry = default_registry()
    cls = registry.dataset(args.name)
    options = parse_option_flags(args.option)
    check_options(cls, options, f"dataset {args.name!r}", reserved=("root",))
    root = dataset_root(cls, resolve_data_root(None, None), args.root)
    dataset = cls(root=root, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # printed below with the provenance, not twice
        index = dataset.load()
    records = index.split(args.split)
    provenance = index.provenance.to_dict()
    if args.provenance:
        print(json.dumps({"provenance": provenance}))
        return 0
    if args.json:
        print(json.dumps({"provenance": provenance}))
        for record in records:
            print(json.dumps(asdict(record)))
        return 0
    from tabulate import tabulate

    for key in ("dataset", "root", "label_files", "direction", "rescale_min", "rescale_max", "split_source", "count", "official_count", "splits"):
        print(f"{key}: {provenance[key]}")
    for note in provenance["notes"]:
        print(f"note: {note}")
    for caution in provenance["warnings"]:
        print(f"warning: {caution}")
    shown = records[: max(args.limit, 0)]
    print(tabulate([asdict(r) for r in shown], headers="keys", floatfmt=".4f"))
    if len(records) > len(shown):
        print(f"... {len(records) - len(shown)} more records (--limit N, or --json for all)")
    return 0


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
            if dataset.root is None:  # it needs a data root; a dataset that makes its own images has a default
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


def _check(args: argparse.Namespace) -> int:
    data_root = resolve_data_root(args.root, None)
    rows = check_datasets(data_root, args.names or None)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"data root: {data_root or '(none: pass --root DIR or set IQABENCH_DATA)'}")
    print(format_check_table(rows))
    return 0
