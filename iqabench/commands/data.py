"""``iqabench data``: download datasets, look at a dataset's records, or check which datasets are on disk.

``data download`` gets the eight datasets from the Hugging Face Hub into the
layout the dataset plugins read (:mod:`iqabench.data.download`); ``data show``
prints what a dataset plugin read (raw and rescaled scores, splits,
provenance) so that a researcher can compare it with the label files line by
line; ``data check`` tells a new user which datasets are ready before a long
run starts. :func:`check_datasets` gives the runner the same table.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import asdict

from iqabench.data.sources import ACCEPT_ENV, DEFAULT_SOURCE, SOURCES

NAME = "data"
HELP = "download datasets, show a dataset's records and provenance, or check which datasets are on disk"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="print a dataset's records (one JSON object per line with --json)")
    show.add_argument("name", help="dataset name (`iqabench data check` lists them)")
    show.add_argument(
        "--root",
        help="the dataset's OWN folder (e.g. /data/koniq10k); default: <data root>/<dataset folder>",
    )
    show.add_argument("--data-root", help="the folder holding every dataset's folder (default: $IQABENCH_DATA)")
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
    download = sub.add_parser(
        "download", help="download datasets from the Hugging Face Hub into the layout `data check` reads",
        description="Download datasets from the Hugging Face Hub, check them, and install them under the data root. "
        "A second call skips what is complete; an interrupted one resumes.",
    )
    download.add_argument("names", nargs="*", metavar="NAME",
                          help="datasets to download, or `all` (`--list` shows the downloadable ones)")
    download.add_argument(
        "--root", help="the DATA root to download into (it gets koniq10k/, spaq/, ...); default: $IQABENCH_DATA"
    )
    download.add_argument(
        "--source", choices=SOURCES, default=DEFAULT_SOURCE,
        help="deqa-score (default): pyiqa's archive for the images + the DeQA-Score meta files the papers evaluate "
        "on; pyiqa: pyiqa's archive alone",
    )
    download.add_argument("--list", action="store_true",
                          help="print each dataset's sources, size, image count and terms of use (offline), and stop")
    download.add_argument("--json", action="store_true", help="with --list: one JSON object per dataset")
    download.add_argument("--accept-terms", action="store_true",
                          help=f"accept the terms of use printed for each dataset (or set {ACCEPT_ENV}=1)")
    download.add_argument("--keep-archives", action="store_true",
                          help="keep the downloaded archives in <root>/.iqabench-download/ after installing")
    download.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "show":
        return _show(args)
    if args.data_command == "download":
        return _download(args)
    return _check(args)


def _show(args: argparse.Namespace) -> int:
    from iqabench.contracts.dataset import DatasetWarning, resolve_data_root
    from iqabench.registry.factory import create_dataset
    from iqabench.registry.options import parse_option_flags

    dataset = create_dataset(args.name, root=args.root, data_root=resolve_data_root(args.data_root, None),
                             **parse_option_flags(args.option))
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

    for key in ("dataset", "root", "label_files", "direction", "rescale_min", "rescale_max", "split_source", "count",
                "official_count", "splits"):
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


def _check(args: argparse.Namespace) -> int:
    from iqabench.contracts.dataset import resolve_data_root
    from iqabench.data.check import check_datasets, format_check_table

    data_root = resolve_data_root(args.root, None)
    rows = check_datasets(data_root, args.names or None)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"data root: {data_root or '(none: pass --root DIR or set IQABENCH_DATA)'}")
    print(format_check_table(rows))
    return 0


def _download(args: argparse.Namespace) -> int:
    from iqabench.contracts.dataset import DATA_ENV, resolve_data_root
    from iqabench.data.sources import downloadable, format_listing, listing

    if args.list:
        table = downloadable()
        if args.json:
            for row in listing(table):
                print(json.dumps(row))
        else:
            print(format_listing(table))
        return 0
    from iqabench.data.check import check_datasets, format_check_table
    from iqabench.data.download import download_datasets
    from iqabench.errors import IQABenchError

    data_root = resolve_data_root(args.root, None)
    if data_root is None:
        raise IQABenchError(
            f"where to? Pass --root DIR (the data root that gets koniq10k/, spaq/, ...) or set {DATA_ENV}."
        )
    outcomes = download_datasets(args.names, data_root, source=args.source, accept_terms=args.accept_terms,
                                 keep_archives=args.keep_archives)
    print()
    print(format_check_table(check_datasets(data_root, [outcome.dataset for outcome in outcomes])))
    return 0
