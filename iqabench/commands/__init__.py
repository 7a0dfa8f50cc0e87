"""One module per ``iqabench`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. :mod:`iqabench.cli` discovers them, so adding a
command is adding a module. Commands are thin: they parse arguments and call
the Python API (:mod:`iqabench.registry.factory`, :mod:`iqabench.run.plan`, :mod:`iqabench.run.runner`, ...).
"""

from __future__ import annotations

import argparse


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars (iqabench's and plugins')")


def _int_at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


#: an argparse type for counts that must be at least 1 (batch sizes, image counts)
positive_int = _int_at_least(1, "at least 1")
#: an argparse type for counts that may be 0 (warm-up calls, decode workers)
non_negative_int = _int_at_least(0, "0 or more")
