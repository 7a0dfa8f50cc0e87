"""The ``iqabench`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

import iqabench
from iqabench import commands
from iqabench.errors import IQABenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iqabench", description="Benchmark harness for no-reference image quality assessment."
    )
    parser.add_argument("--version", action="version", version=f"iqabench {iqabench.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except IQABenchError as exc:
        print(f"iqabench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iqabench: interrupted; finished work is kept and a re-run resumes from it.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
