"""``iqabench convert NAME SRC OUT``: turn a third-party release into a pickle-free checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from iqabench.errors import IQABenchError

NAME = "convert"
HELP = "convert a released checkpoint (e.g. rali-official) into a pickle-free iqabench checkpoint"
TRUST_PICKLE_HELP = (
    "allow unpickling the release's pickled files (for rali-official: pca.pkl, and ckpt.pt when "
    "torch.load(weights_only=True) cannot read it). Unpickling runs whatever code the file contains: give it only "
    "for a release from a source you trust. It happens once; the converted folder loads without pickle."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="converter name (`iqabench list converters`), e.g. rali-official")
    parser.add_argument("source", help="the release as downloaded")
    parser.add_argument("out", help="folder to write the converted checkpoint into")
    parser.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)


def run(args: argparse.Namespace) -> int:
    from iqabench.registry.discovery import default_registry

    cls = default_registry().get("converter", args.name).cls
    source, out = Path(args.source), Path(args.out)
    if cls.reads_pickle and not args.trust_pickle:
        raise IQABenchError(
            f"converter {args.name!r} has to unpickle {cls.pickled_files or 'files of the release'}, and unpickling "
            "runs whatever code the file contains. If you trust the release, run the command again with "
            "--trust-pickle; the converted folder then loads without pickle. Nothing was read or written."
        )
    if not source.exists():
        raise IQABenchError(f"{source} does not exist; pass the folder of the release to convert.")
    if out.exists() and any(out.iterdir()):
        raise IQABenchError(f"{out} exists and is not empty; choose a new folder for the converted checkpoint.")
    written = cls().convert(source, out, trust_pickle=args.trust_pickle)
    print(f"wrote {written}")
    return 0
