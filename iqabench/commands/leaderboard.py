"""``iqabench leaderboard RESULTS_DIR``: regenerate leaderboard.md from results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from iqabench.errors import IQABenchError

NAME = "leaderboard"
HELP = "regenerate a run's leaderboard.md from its results.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", help="a run's output folder (holding results.json)")
    parser.add_argument("--print", action="store_true", help="also print the leaderboard")


def run(args: argparse.Namespace) -> int:
    from iqabench.results import rewrite_leaderboard

    folder = Path(args.results_dir)
    if not (folder / "results.json").exists():
        raise IQABenchError(f"{folder} has no results.json; pass the --out folder of an `iqabench run`.")
    path = rewrite_leaderboard(folder)
    print(path.read_text() if args.print else f"wrote {path}")
    return 0
