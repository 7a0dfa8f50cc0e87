"""``iqabench leaderboard RESULTS_DIR``: regenerate leaderboard.md from results.json.

``iqabench leaderboard --merge OUT1 OUT2 ... --out MERGED`` joins the folders of
runs that each hold part of one suite (:mod:`iqabench.merge`) and writes the
leaderboard of the whole suite into MERGED.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iqabench.errors import IQABenchError

NAME = "leaderboard"
HELP = "regenerate a run's leaderboard.md from its results.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", nargs="?", help="a run's output folder (holding results.json)")
    parser.add_argument("--print", action="store_true", help="also print the leaderboard")
    parser.add_argument("--merge", nargs="+", metavar="FOLDER",
                        help="join the output folders of runs that each hold part of one suite (needs --out)")
    parser.add_argument("--out", help="with --merge: the folder the merged results and leaderboard are written to")


def run(args: argparse.Namespace) -> int:
    from iqabench.results import rewrite_leaderboard

    if args.merge:
        from iqabench.merge import merge_runs

        if not args.out or args.results_dir:
            raise IQABenchError("--merge FOLDER... needs --out MERGED (and no RESULTS_DIR).")
        merge_runs(args.merge, args.out)
        args.results_dir = args.out
    if not args.results_dir:
        raise IQABenchError("give a run's output folder, or --merge FOLDER... --out MERGED.")
    folder = Path(args.results_dir)
    if not (folder / "results.json").exists():
        raise IQABenchError(f"{folder} has no results.json; pass the --out folder of an `iqabench run`.")
    path = rewrite_leaderboard(folder)
    print(path.read_text() if args.print else f"wrote {path}")
    return 0
