"""``iqabench convert NAME SRC OUT``: turn a third-party release into a pickle-free checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from iqabench.errors import IQABenchError

NAME = "convert"
HELP = "convert a released checkpoint (e.g. rali-official) into a pickle-free iqabench checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="converter name (`iqabench list converters`), e.g. rali-official")
    parser.add_argument("source", help="the release as downloaded")
    parser.add_argument("out", help="folder to write the converted checkpoint into")


def run(args: argparse.Namespace) -> int:
    from iqabench.registry import default_registry

    converter = default_registry().get("converter", args.name).cls()
    source, out = Path(args.source), Path(args.out)
    if not source.exists():
        raise IQABenchError(f"{source} does not exist; pass the folder of the release to convert.")
    if out.exists() and any(out.iterdir()):
        raise IQABenchError(f"{out} exists and is not empty; choose a new folder for the converted checkpoint.")
    written = converter.convert(source, out)
    print(f"wrote {written}")
    return 0
